"""Every config under configs/ parses, builds, and trains one tiny step."""
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import rss_mmseg  # noqa: F401
from rss_mmseg.engine.hooks import PolicyAnchorHook
from rss_mmseg.utils import (check_config, custom_imports_of,
                             missing_base_imports)
from tests.conftest import REPO_ROOT

CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                         recursive=True) if '/_base_/' not in p)


def tiny_batch(num_classes: int, size=(64, 64), batch: int = 2):
    """Random images and labels (with some ignored pixels)."""
    torch.manual_seed(0)
    inputs = torch.randn(batch, 3, *size)
    samples = []
    for _ in range(batch):
        label = torch.randint(0, num_classes, (1, *size))
        label[:, :4] = 255
        sample = SegDataSample(gt_sem_seg=PixelData(data=label))
        sample.set_metainfo(
            dict(img_shape=size, ori_shape=size, pad_shape=size))
        samples.append(sample)
    return inputs, samples


def build_untrained(cfg: Config) -> torch.nn.Module:
    """Build without downloading pretrained weights; SyncBN -> BN for CPU."""
    cfg.model.pop('pretrained', None)
    cfg.model.backbone.pop('init_cfg', None)
    return revert_sync_batchnorm(MODELS.build(cfg.model))


def test_configs_found():
    assert any('baselines' in p for p in CONFIGS)


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO_ROOT) for p in CONFIGS])
def test_config_builds_and_trains_one_step(path):
    cfg = Config.fromfile(path)
    check_config(cfg, path)
    # rss_mmseg is imported (here or by a base), and no base's imports are
    # lost: mmengine replaces a child's ``imports`` list, so a config on a
    # base with its own custom_imports (mmpretrain.models, ...) lists both
    assert 'rss_mmseg' in custom_imports_of(cfg)
    assert missing_base_imports(path, cfg) == []
    model = build_untrained(cfg)
    if any(h.get('type') == 'PolicyAnchorHook'
           for h in cfg.get('custom_hooks') or []):
        # what the hook does before training, from the weights at hand
        PolicyAnchorHook().attach(model)
    model.train()
    inputs, samples = tiny_batch(cfg.model.decode_head.num_classes)
    losses = model.loss(inputs, samples)
    loss_keys = [k for k in losses if 'loss' in k]
    assert loss_keys, f'no loss_* in {list(losses)}'
    total = sum(losses[k] for k in loss_keys)
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        out = model.predict(inputs, samples)
    assert out[0].pred_sem_seg.data.shape[-2:] == inputs.shape[-2:]


@pytest.mark.parametrize(
    'path', [p for p in CONFIGS if 'rss-image' in osp.basename(p)],
    ids=lambda p: osp.relpath(p, REPO_ROOT))
def test_image_level_configs_keep_the_label_guard(path):
    """Every image-level config trains under LabelLeakCheckHook, and those
    with a PSR schedule start it at the head's own initial scale."""
    cfg = Config.fromfile(path)
    hooks = {h['type']: h for h in cfg.custom_hooks}
    assert 'LabelLeakCheckHook' in hooks
    assert 'NumClassesCheckHook' in hooks
    psr = hooks.get('ProgressiveScaleHook')
    if psr is not None:
        assert psr['scales'][0] == cfg.model.decode_head.scales


@pytest.mark.parametrize(
    'path', [p for p in CONFIGS if '/configs/rss/' in p],
    ids=lambda p: osp.relpath(p, REPO_ROOT))
def test_rss_configs_keep_the_guards(path):
    """CPU and GPU-scale RSS configs alike: the class-count check and the
    RNG states in checkpoints (exact --resume)."""
    hooks = {h['type'] for h in Config.fromfile(path).custom_hooks}
    assert {'NumClassesCheckHook', 'RandomStateHook'} <= hooks


@pytest.mark.parametrize(
    'path', [
        p for p in CONFIGS if '/configs/rss/' in p
        and not re.search(r'_(synthetic|camvid)-', osp.basename(p))
    ],
    ids=lambda p: osp.relpath(p, REPO_ROOT))
def test_multi_gpu_configs_sample_from_one_stream_per_rank(path):
    """Multi-GPU RSS configs seed each rank differently: with one stream all
    GPUs would draw their actions from the same uniforms."""
    assert Config.fromfile(path).randomness.diff_rank_seed is True
