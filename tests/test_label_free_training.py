"""Image-level RSS trains on data that carry no pixel labels at all.

The dataset here has images only (no annotation folder, no
LoadAnnotations). The reward is an external scorer plugged in through
``CallableReward``: a stand-in for a rating service that keeps its own
references out of the training data and sees each action map with its image
(``RSSEncoderDecoder`` hands the images over).
"""
import os
import os.path as osp
import shutil

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmseg.registry import MODELS

from tests.conftest import REPO_ROOT, tiny_run_overrides

IMAGE_CONFIG = osp.join(REPO_ROOT, 'configs/rss',
                        'rss-image_fast-scnn_1xb8-1k_synthetic-128x128.py')
HIDDEN_ENV = 'RSS_TEST_HIDDEN_REFERENCES'
CALLS = []


def rate(inputs, action_maps, data_samples):
    """Score each map by its accuracy against a reference only the rater
    has, found by the image's file name."""
    assert inputs is not None and inputs.shape[1] == 3
    hidden = os.environ[HIDDEN_ENV]
    scores = []
    for action_map, sample in zip(action_maps, data_samples):
        assert 'gt_sem_seg' not in sample, 'the training data leaked labels'
        name = osp.basename(sample.img_path)
        reference = mmcv.imread(osp.join(hidden, name), flag='unchanged')
        reference = torch.from_numpy(reference.astype(np.int64))
        valid = reference != 255
        hits = (action_map.cpu() == reference) & valid
        scores.append(hits.sum() / valid.sum().clamp(min=1))
    CALLS.append(len(scores))
    return torch.stack(scores).float()


@pytest.mark.parametrize('anchor', [False, True], ids=['plain', 'kl-anchor'])
def test_trains_without_annotations_from_an_external_scorer(
        synthetic_root, tmp_path, monkeypatch, anchor):
    """Also KL-anchored to a starting model (PolicyAnchorHook): the
    reference runs on the images of data that carry no labels."""
    images = tmp_path / 'unlabelled'
    shutil.copytree(osp.join(synthetic_root, 'img_dir', 'train'),
                    images / 'img_dir' / 'train')
    assert not (images / 'ann_dir').exists()
    monkeypatch.setenv(HIDDEN_ENV,
                       osp.join(synthetic_root, 'ann_dir', 'train'))

    cfg = Config.fromfile(IMAGE_CONFIG)
    cfg.merge_from_dict(
        tiny_run_overrides(synthetic_root, str(tmp_path / 'work'), 3))
    cfg.model.type = 'RSSEncoderDecoder'
    cfg.model.decode_head.reward = dict(
        type='CallableReward',
        fn='tests.test_label_free_training.rate',
        value_range=(0.0, 1.0))
    cfg.model.decode_head.num_samples = 2
    train = cfg.train_dataloader
    train.dataset = dict(
        type='BaseSegDataset',
        data_root=str(images),
        data_prefix=dict(img_path='img_dir/train'),
        img_suffix='.png',
        metainfo=dict(classes=cfg.train_dataloader.dataset.get(
            'metainfo', {}).get('classes', tuple(
                f'c{i}' for i in range(6)))),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='PackSegInputs')])
    # nothing labelled to validate on: training only
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    if anchor:
        cfg.model.decode_head.anchor_weight = 1.0
        cfg.custom_hooks.append(dict(type='PolicyAnchorHook'))
        cfg.load_from = str(tmp_path / 'start.pth')
        torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()),
                   cfg.load_from)

    runner = Runner.from_cfg(cfg)
    model = runner.model
    before = [p.detach().clone() for p in model.parameters()]
    CALLS.clear()
    runner.train()

    # 3 iterations x 2 samples, each call scoring the 2 images of a batch
    assert CALLS == [2] * 6
    changed = [
        not torch.equal(b, p.detach())
        for b, p in zip(before, model.parameters())
    ]
    assert any(changed), 'no parameter was trained'
    reward = runner.message_hub.get_scalar('train/decode.reward').current()
    assert 0.0 <= reward <= 1.0
    assert model.decode_head.reward_inputs is None  # not kept after the step
    if anchor:
        kl = runner.message_hub.get_scalar('train/decode.anchor_kl')
        assert kl.current() > 0  # the policy moved away from the start
        assert model.anchor is None  # released after training
