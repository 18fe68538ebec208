"""CamVid converter and dataset on the real SegNet copy in ../shared."""
import glob
import os.path as osp

import cv2
import numpy as np
import pytest

from tests.conftest import REPO_ROOT, load_tool


def _load_converter():
    return load_tool('dataset_converters/camvid.py', 'camvid_converter')


@pytest.fixture(scope='module')
def converted(camvid_src, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('camvid'))
    counts = _load_converter().convert_camvid(camvid_src, out,
                                              splits=('train', 'val'))
    return camvid_src, out, counts


def test_converter_counts_and_layout(converted):
    _, out, counts = converted
    assert counts == {'train': 367, 'val': 101}
    for split, n in counts.items():
        assert len(glob.glob(osp.join(out, 'img_dir', split, '*.png'))) == n
        assert len(glob.glob(osp.join(out, 'ann_dir', split, '*.png'))) == n


def test_void_maps_to_255(converted):
    src, out, _ = converted
    names = sorted(glob.glob(osp.join(src, 'valannot', '*.png')))[:10]
    seen_void = False
    for name in names:
        raw = cv2.imread(name, cv2.IMREAD_UNCHANGED)
        new = cv2.imread(
            osp.join(out, 'ann_dir', 'val', osp.basename(name)),
            cv2.IMREAD_UNCHANGED)
        assert new.shape == raw.shape
        void = raw == 11
        seen_void |= bool(void.any())
        assert np.all(new[void] == 255)
        assert np.array_equal(new[~void], raw[~void])
        assert set(np.unique(new).tolist()) <= set(range(11)) | {255}
    assert seen_void, 'expected some void pixels in the first val labels'


def test_converter_rejects_bad_label(tmp_path):
    bad = tmp_path / 'bad.png'
    cv2.imwrite(str(bad), np.full((4, 4), 12, np.uint8))
    with pytest.raises(ValueError, match='bad.png'):
        _load_converter().convert_label(str(bad))


def test_dataset_loads_through_pipeline(converted):
    from mmengine.config import Config
    from mmseg.registry import DATASETS
    import rss_mmseg  # noqa: F401
    _, out, _ = converted
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs/_base_/datasets/camvid.py'))
    for loader, n, shape in (('train_dataloader', 367, (176, 240)),
                             ('val_dataloader', 101, (180, 240))):
        ds_cfg = cfg[loader].dataset
        ds_cfg.data_root = out
        dataset = DATASETS.build(ds_cfg)
        assert len(dataset) == n
        sample = dataset[0]
        assert tuple(sample['inputs'].shape[1:]) == shape
        gt = sample['data_samples'].gt_sem_seg.data
        assert set(gt.unique().tolist()) <= set(range(11)) | {255}
    assert len(dataset.metainfo['classes']) == 11
