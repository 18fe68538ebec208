"""The embedded synthetic dataset: deterministic, all classes, not trivial."""
import filecmp
import glob
import os.path as osp

import cv2
import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from rss_mmseg.datasets.synthetic import (CLASSES, IGNORE_INDEX,
                                          ensure_synthetic_dataset,
                                          generate_synthetic_dataset,
                                          make_sample)


def _labels(root, split='train'):
    files = sorted(glob.glob(osp.join(root, 'ann_dir', split, '*.png')))
    return [cv2.imread(f, cv2.IMREAD_UNCHANGED) for f in files]


def test_same_seed_same_files(tmp_path):
    a = generate_synthetic_dataset(str(tmp_path / 'a'), 6, 2, 64, seed=3)
    b = generate_synthetic_dataset(str(tmp_path / 'b'), 6, 2, 64, seed=3)
    for sub in ('img_dir/train', 'ann_dir/train', 'img_dir/val',
                'ann_dir/val'):
        names = sorted(p.name for p in (tmp_path / 'a' / sub).iterdir())
        match, mismatch, errors = filecmp.cmpfiles(
            osp.join(a, sub), osp.join(b, sub), names, shallow=False)
        assert not mismatch and not errors and len(match) == len(names)


def test_other_seed_other_images():
    img1, _ = make_sample(np.random.default_rng([1, 0, 0]), 64)
    img2, _ = make_sample(np.random.default_rng([2, 0, 0]), 64)
    assert not np.array_equal(img1, img2)


def test_all_classes_and_ignore_present(synthetic_root):
    values = np.unique(np.concatenate([lab.ravel() for lab in
                                       _labels(synthetic_root)]))
    assert set(range(len(CLASSES))) <= set(values.tolist())
    assert IGNORE_INDEX in values
    assert set(values.tolist()) <= set(range(len(CLASSES))) | {IGNORE_INDEX}


def test_sample_shapes_and_types():
    img, label = make_sample(np.random.default_rng(0), 96)
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8
    assert label.shape == (96, 96) and label.dtype == np.uint8


def test_colour_does_not_separate_classes():
    """A nearest-mean-colour classifier stays near chance (1/6 balanced)."""
    rng = np.random.default_rng(0)
    samples = [make_sample(rng, 64) for _ in range(40)]
    pix = np.concatenate([s[0].reshape(-1, 3) for s in samples]).astype(float)
    lab = np.concatenate([s[1].ravel() for s in samples])
    keep = lab != IGNORE_INDEX
    pix, lab = pix[keep], lab[keep]
    means = np.stack([pix[lab == c].mean(0) for c in range(len(CLASSES))])
    pred = np.argmin(((pix[:, None] - means[None])**2).sum(-1), 1)
    recall = [np.mean(pred[lab == c] == c) for c in range(len(CLASSES))]
    assert np.mean(recall) < 0.35, recall


def test_ensure_refuses_other_settings(tmp_path):
    out = str(tmp_path / 'syn')
    ensure_synthetic_dataset(out, num_train=2, num_val=1, size=32)
    ensure_synthetic_dataset(out, num_train=2, num_val=1, size=32)  # reuse
    with pytest.raises(ValueError, match='other settings'):
        ensure_synthetic_dataset(out, num_train=3, num_val=1, size=32)


def test_dataset_loads_through_pipeline(synthetic_root):
    from mmengine.config import Config
    from mmseg.registry import DATASETS
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs/_base_/datasets/synthetic.py'))
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = synthetic_root
    dataset = DATASETS.build(ds_cfg)
    assert len(dataset) == 16
    sample = dataset[0]
    assert tuple(sample['inputs'].shape) == (3, 64, 64)
    assert tuple(sample['data_samples'].gt_sem_seg.data.shape) == (1, 64, 64)
    assert dataset.metainfo['classes'] == CLASSES
