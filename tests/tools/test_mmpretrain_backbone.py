"""An mmpretrain backbone under RSS, end to end through tools/train.py.

mmpretrain is part of the stack (``make venv``), so nothing here skips: the
CamVid RSS configs with mmpretrain's MobileNetV2 train for 2 iterations at
both reward levels (on the tiny synthetic set, read through the configs'
own CamVid dataset class and pipeline) and the config keeps both its
imports (mmpretrain's and rss_mmseg's).
"""
import os.path as osp

import mmpretrain
import pytest
from mmengine.config import Config

from tests.conftest import (REPO_ROOT, as_cfg_options, run_tool,
                            tiny_run_overrides)

CONFIG = osp.join(
    REPO_ROOT, 'configs/rss', 'rss-{level}_mmpretrain-mobilenet-v2-0.5x_'
    'segformer-head_1xb8-2k_camvid-176x240.py')


def test_mmpretrain_is_installed_with_torchvision():
    import torchvision  # noqa: F401  mmpretrain imports it
    assert mmpretrain.__version__ == '1.2.0'


@pytest.mark.parametrize('level', ['pixel', 'image'])
def test_rss_trains_an_mmpretrain_backbone(level, synthetic_root, tmp_path):
    config = CONFIG.format(level=level)
    cfg = Config.fromfile(config)
    assert cfg.model.backbone.type == 'mmpretrain.MobileNetV2'
    assert cfg.custom_imports.imports == ['mmpretrain.models', 'rss_mmseg']
    work_dir = str(tmp_path / level)
    options = tiny_run_overrides(synthetic_root, work_dir, 2)
    result = run_tool('train.py', [config, '--cfg-options',
                                   *as_cfg_options(options)])
    assert result.returncode == 0, result.stderr[-4000:]
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))
    log = result.stdout + result.stderr
    assert ('loss_pixel_reward' if level == 'pixel' else 'loss_psd') in log
