"""Image-level RSS refuses models in which pixel labels reach the gradient."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmseg.registry import MODELS

from rss_mmseg.engine.hooks import find_label_leaks
from tests.conftest import REPO_ROOT, as_cfg_options, run_tool, \
    tiny_run_overrides

CONFIGS = osp.join(REPO_ROOT, 'configs')
IMAGE = osp.join(CONFIGS,
                 'rss/rss-image_fast-scnn_1xb8-1k_synthetic-128x128.py')
PIXEL = osp.join(CONFIGS,
                 'rss/rss-pixel_fast-scnn_1xb8-1k_synthetic-128x128.py')
CE = osp.join(CONFIGS, 'baselines/ce_fast-scnn_1xb8-1k_synthetic-128x128.py')

AUX_FCN = dict(
    type='FCNHead',
    in_channels=128,
    channels=32,
    num_convs=1,
    num_classes=6,
    in_index=-2,
    norm_cfg=dict(type='BN', requires_grad=True),
    concat_input=False,
    loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4))


def build(path, **model):
    cfg = Config.fromfile(path)
    cfg.model.update(model)
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('path', [IMAGE, PIXEL, CE])
def test_shipped_configs_have_no_leak(path):
    assert find_label_leaks(build(path)) == []


def test_ce_auxiliary_head_is_named():
    leaks = find_label_leaks(build(IMAGE, auxiliary_head=AUX_FCN))
    assert leaks == ['model.auxiliary_head (FCNHead with CrossEntropyLoss)']


def test_pixel_reward_auxiliary_head_is_a_leak_too():
    aux = dict(
        type='RSSHead', head=AUX_FCN, reward=dict(type='PixelMatchReward'))
    leaks = find_label_leaks(build(IMAGE, auxiliary_head=aux))
    assert leaks == [
        'model.auxiliary_head (RSSHead with the pixel-level PixelMatchReward)'
    ]


def test_image_level_auxiliary_head_is_allowed():
    aux = dict(
        type='RSSHead',
        head=AUX_FCN,
        reward=dict(type='ImageMIoUReward'),
        loss=dict(type='PSDLoss', loss_weight=0.4),
        num_samples=2,
        scales=4)
    assert find_label_leaks(build(IMAGE, auxiliary_head=aux)) == []


def test_training_refuses_the_leaking_config(synthetic_root, tmp_path):
    config = tmp_path / 'rss-image_with-ce-aux.py'
    config.write_text(f'_base_ = {IMAGE!r}\n'
                      f'model = dict(auxiliary_head=dict(_delete_=True, '
                      f'**{AUX_FCN!r}))\n')
    overrides = tiny_run_overrides(synthetic_root, str(tmp_path), 2)
    result = run_tool('train.py', [
        str(config), '--cfg-options', *as_cfg_options(overrides)])
    assert result.returncode != 0
    assert 'pixel labels would reach the gradient through ' \
        'model.auxiliary_head (FCNHead with CrossEntropyLoss)' in \
        result.stderr
    assert 'auxiliary_head=None' in result.stderr
