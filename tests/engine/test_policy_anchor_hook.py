"""PolicyAnchorHook: the frozen starting model of KL-anchored fine-tuning."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmseg.registry import MODELS

from rss_mmseg.engine.hooks import PolicyAnchorHook
from rss_mmseg.engine.hooks.policy_anchor_hook import CHECKPOINT_KEY
from tests.conftest import (REPO_ROOT, as_cfg_options, load_tool, run_tool,
                            tiny_run_overrides)
from tests.models.test_policy_anchor import batch, make_segmentor

ANCHOR_CONFIG = osp.join(
    REPO_ROOT, 'configs/rss/finetune',
    'rss-finetune-miou-local-anchor_fast-scnn_1xb8-250_synthetic-128x128.py')
CE_CONFIG = osp.join(REPO_ROOT, 'configs/baselines',
                     'ce_fast-scnn_1xb8-1k_synthetic-128x128.py')


class FakeRunner:
    """What the hook reads from mmengine's Runner."""

    def __init__(self, model, load_from=None, iter=0):
        self.model = model
        self.cfg = Config(dict(load_from=load_from))
        self._load_from = load_from
        self.iter = iter
        self.epoch = 0
        self.logger = MMLogger.get_current_instance()


def train_steps(model, steps=3):
    """A few SGD steps of the anchored reward loss."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    for i in range(steps):
        losses = model.loss(*batch(seed=i))
        loss, _ = model.parse_losses(losses)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.fixture
def saved(tmp_path):
    """A model trained a few steps, its checkpoint, then perturbed."""
    model = make_segmentor(anchor_weight=1.0)
    PolicyAnchorHook().attach(model)  # from the initial weights
    train_steps(model)
    path = str(tmp_path / 'start.pth')
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(dict(meta=dict(), state_dict=state), path)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
        for b in model.buffers():
            if b.is_floating_point():
                b.mul_(1.5)
    return model, path, state


def assert_reference_is(ref, state):
    got = ref.state_dict()
    assert sorted(got) == sorted(state)
    for key, value in state.items():
        assert torch.equal(got[key], value), key


def test_reference_comes_from_the_file_not_the_model(saved):
    model, path, state = saved
    hook = PolicyAnchorHook()
    hook.before_train(FakeRunner(model, load_from=path))
    ref = model.anchor
    assert ref is not None and hook.path == path
    assert_reference_is(ref, state)
    moved = model.state_dict()
    assert not all(torch.equal(moved[k], v) for k, v in state.items())
    # frozen, BatchNorm on batch statistics that never change
    assert not any(p.requires_grad for p in ref.parameters())
    norms = [m for m in ref.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.training and m.momentum == 0 for m in norms)
    # an explicit checkpoint wins over load_from
    other = PolicyAnchorHook(checkpoint=path)
    other.before_train(FakeRunner(model, load_from='/nonexistent.pth'))
    assert_reference_is(model.anchor, state)
    hook.after_train(FakeRunner(model))
    assert model.anchor is None


def test_resume_uses_the_starting_checkpoint_recorded_in_the_resumed_one(
        saved):
    model, path, state = saved
    hook = PolicyAnchorHook()
    hook.before_train(FakeRunner(model, load_from=path))
    checkpoint = dict()
    hook.before_save_checkpoint(FakeRunner(model), checkpoint)
    assert checkpoint[CHECKPOINT_KEY] == dict(checkpoint=path)

    resumed = PolicyAnchorHook()
    resumed.after_load_checkpoint(FakeRunner(model), checkpoint)
    # mmengine resumes from load_from when set: it is not the start
    resumed.before_train(
        FakeRunner(model, load_from='/work_dir/iter_2.pth', iter=2))
    assert_reference_is(model.anchor, state)

    bare = PolicyAnchorHook()
    bare.after_load_checkpoint(FakeRunner(model), dict(meta=dict()))
    with pytest.raises(ValueError, match='does not record the starting'):
        bare.before_train(FakeRunner(model, load_from=path, iter=2))


def test_errors_name_the_fix(saved, tmp_path):
    model, path, _ = saved
    with pytest.raises(ValueError, match='load_from=PATH'):
        PolicyAnchorHook().before_train(FakeRunner(model))
    plain = make_segmentor(type='EncoderDecoder')
    with pytest.raises(TypeError, match="model.type='RSSEncoderDecoder'"):
        PolicyAnchorHook().before_train(FakeRunner(plain, load_from=path))
    unanchored = make_segmentor(anchor_weight=0.0)
    with pytest.raises(ValueError, match='no head has anchor_weight > 0'):
        PolicyAnchorHook().before_train(
            FakeRunner(unanchored, load_from=path))
    missing = str(tmp_path / 'missing.pth')
    with pytest.raises(FileNotFoundError, match=f'{missing} .from load_fr'):
        PolicyAnchorHook().before_train(FakeRunner(model, load_from=missing))
    other = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict=dict(foo=torch.zeros(1))), other)
    with pytest.raises(ValueError, match='not a checkpoint of this model'):
        PolicyAnchorHook().before_train(FakeRunner(model, load_from=other))
    with pytest.raises(ValueError, match='mode'):
        PolicyAnchorHook(mode='test')
    with pytest.raises(ValueError, match='checkpoint'):
        PolicyAnchorHook(checkpoint='')


def test_anchored_config_trains_and_resumes(synthetic_root, tmp_path):
    """tools/train.py of the synthetic anchor config from a CE checkpoint:
    the KL is 0 at the first iteration (the reference is the starting
    model) and grows after; --resume without load_from anchors to the same
    starting checkpoint."""
    ce = MODELS.build(Config.fromfile(CE_CONFIG).model)
    start = str(tmp_path / 'ce.pth')
    torch.save(dict(meta=dict(), state_dict=ce.state_dict()), start)
    work = str(tmp_path / 'work')

    def train(iters, *extra):
        overrides = tiny_run_overrides(synthetic_root, work, iters)
        overrides['default_hooks.checkpoint.interval'] = 2
        overrides['log_processor.window_size'] = 1
        if not extra:
            overrides['load_from'] = start
        result = run_tool('train.py', [
            ANCHOR_CONFIG, '--cfg-options', *as_cfg_options(overrides),
            *extra
        ])
        assert result.returncode == 0, result.stderr[-4000:]
        return result

    first = train(2)
    assert f'anchored to the starting policy of {start} (load_from' in (
        first.stdout + first.stderr)
    checkpoint = torch.load(osp.join(work, 'iter_2.pth'), map_location='cpu')
    assert checkpoint[CHECKPOINT_KEY] == dict(checkpoint=start)
    assert not any('anchor' in k for k in checkpoint['state_dict'])
    second = train(3, '--resume')
    assert f'{start} (the resumed checkpoint' in (second.stdout +
                                                  second.stderr)
    logs, _ = load_tool('analysis_tools/bench_report.py',
                        'rss_bench_report').load_scalars(work)
    assert sorted(logs) == [1, 2, 3]
    assert logs[1]['decode.anchor_kl'] == 0
    assert logs[2]['decode.anchor_kl'] > 0 and logs[3]['decode.anchor_kl'] > 0
    for record in logs.values():
        assert record['decode.loss_anchor'] == pytest.approx(
            record['decode.anchor_kl'])  # anchor_weight 1.0
