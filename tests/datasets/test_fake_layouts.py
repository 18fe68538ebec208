"""rss_mmseg.datasets.fake_layouts: the stock mmseg datasets read the fake
copies with the stock configs' dataset settings, labels in range."""
import filecmp
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from mmengine.config import Config
from mmseg.registry import DATASETS

from rss_mmseg.datasets.fake_layouts import (DATA_ROOTS, LAYOUTS,
                                             make_fake_dataset,
                                             make_fake_datasets)
from tests.conftest import REPO_ROOT

MMSEG_DATASETS = {  # mmseg::_base_/datasets/<file>, number of classes
    'voc12aug': ('pascal_voc12_aug.py', 21),
    'context59': ('pascal_context_59.py', 59),
    'cityscapes': ('cityscapes.py', 19),
    'ade20k': ('ade20k.py', 150),
}


@pytest.fixture(scope='module')
def fake_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('fake'))
    make_fake_datasets(root, seed=0)
    return root


def _loaders(layout: str, data_root: str):
    """Train and val dataset configs of the stock mmseg dataset file, with
    ``data_root`` replaced and the pipeline reduced to the two loaders."""
    name, _ = MMSEG_DATASETS[layout]
    import mmseg
    cfg = Config.fromfile(
        osp.join(
            osp.dirname(mmseg.__file__), '.mim', 'configs', '_base_',
            'datasets', name))
    for key in ('train_dataloader', 'val_dataloader'):
        dataset = cfg[key]['dataset']
        for part in dataset.get('datasets', [dataset]):
            load = [t for t in part['pipeline'] if 'Load' in t['type']]
            part.update(data_root=data_root, pipeline=load)
            yield key, part


@pytest.mark.parametrize('layout', sorted(LAYOUTS))
def test_stock_datasets_read_the_fake_layout(layout, fake_root):
    _, num_classes = MMSEG_DATASETS[layout]
    data_root = osp.join(fake_root, DATA_ROOTS[layout])
    seen = set()
    for key, part in _loaders(layout, data_root):
        dataset = DATASETS.build(part)
        assert len(dataset) == (4 if key == 'train_dataloader' else 2)
        for i in range(len(dataset)):
            item = dataset[i]
            label = item['gt_seg_map']
            assert item['img'].shape[:2] == label.shape
            seen |= set(np.unique(label).tolist())
    # every class index valid; 255 (ignored) present where the dataset has
    # it: VOC's boundary band, Cityscapes' void, reduce_zero_label's 0
    assert seen - {255} <= set(range(num_classes)), sorted(seen)
    assert 255 in seen
    assert len(seen - {255}) > 2


def test_deterministic_by_seed(tmp_path):
    a = make_fake_dataset('cityscapes', str(tmp_path / 'a'), seed=3)
    b = make_fake_dataset('cityscapes', str(tmp_path / 'b'), seed=3)
    c = make_fake_dataset('cityscapes', str(tmp_path / 'c'), seed=4)
    rel = 'gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png'
    img = 'leftImg8bit/val/frankfurt/frankfurt_000000_000019_leftImg8bit.png'
    for name in (rel, img):
        assert filecmp.cmp(osp.join(a, name), osp.join(b, name), False)
        assert not filecmp.cmp(osp.join(a, name), osp.join(c, name), False)


def test_unknown_layout(tmp_path):
    with pytest.raises(KeyError, match='voc12aug'):
        make_fake_dataset('voc2007', str(tmp_path))


def test_cli_prints_the_data_roots(tmp_path):
    out = subprocess.run([
        sys.executable,
        osp.join(REPO_ROOT, 'tools/misc/make_fake_datasets.py'), '-o',
        str(tmp_path), '--datasets', 'voc12aug', 'ade20k', '--seed', '1'
    ],
                         cwd=REPO_ROOT,
                         env=dict(
                             os.environ,
                             PYTHONPATH=REPO_ROOT,
                             OMP_NUM_THREADS='1'),
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    for layout in ('voc12aug', 'ade20k'):
        root = osp.join(str(tmp_path), DATA_ROOTS[layout])
        assert f'data_root={root}' in out.stdout
        assert osp.isdir(root)
    assert not osp.exists(osp.join(str(tmp_path), DATA_ROOTS['cityscapes']))
