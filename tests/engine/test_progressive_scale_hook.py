"""ProgressiveScaleHook: the PSR schedule, its checks, and exact resume."""
import json
import os.path as osp
import shutil

import pytest
from mmengine.config import Config

from rss_mmseg.engine.hooks import ProgressiveScaleHook
from tests.conftest import REPO_ROOT, as_cfg_options, run_tool, \
    tiny_run_overrides

IMAGE_CONFIG = osp.join(REPO_ROOT, 'configs/rss',
                        'rss-image_fast-scnn_1xb8-1k_synthetic-128x128.py')


def psr_scales_key() -> str:
    """The --cfg-options key of the PSR hook's scales in IMAGE_CONFIG."""
    hooks = Config.fromfile(IMAGE_CONFIG).custom_hooks
    index = [h['type'] for h in hooks].index('ProgressiveScaleHook')
    return f'custom_hooks.{index}.scales'


def test_default_milestones_split_training_in_equal_parts():
    hook = ProgressiveScaleHook(scales=[4, 8, 16, 32])
    grids = [hook.grid_at(i, 400) for i in (0, 99, 100, 199, 200, 300, 399)]
    assert grids == [(4, 4), (4, 4), (8, 8), (8, 8), (16, 16), (32, 32),
                     (32, 32)]


def test_milestones_in_iterations_and_fractions():
    by_iter = ProgressiveScaleHook(scales=[2, (4, 6), None],
                                   milestones=[10, 30])
    assert [by_iter.grid_at(i, 100) for i in (9, 10, 29, 30)] == [
        (2, 2), (4, 6), (4, 6), None]
    by_frac = ProgressiveScaleHook(scales=[2, 4], milestones=[0.25])
    assert by_frac.grid_at(24, 100) == (2, 2)
    assert by_frac.grid_at(25, 100) == (4, 4)


def test_linear_mode_interpolates_cells_per_side():
    hook = ProgressiveScaleHook(scales=[4, 32], mode='linear')
    assert hook.grid_at(0, 101) == (4, 4)
    assert hook.grid_at(50, 101) == (18, 18)
    assert hook.grid_at(100, 101) == (32, 32)


@pytest.mark.parametrize('kwargs,words', [
    (dict(scales=[]), 'at least one'),
    (dict(scales=[None, 4]), 'last'),
    (dict(scales=[4, 8], milestones=[10, 20]), '1 milestones'),
    (dict(scales=[4, 8, 16], milestones=[20, 10]), 'increasing'),
    (dict(scales=[4, 8], mode='cosine'), 'mode'),
    (dict(scales=[4], mode='linear'), 'two or more'),
    (dict(scales=[0, 4]), '>= 1'),
])
def test_bad_schedules_are_refused(kwargs, words):
    with pytest.raises(ValueError, match=words):
        ProgressiveScaleHook(**kwargs)


def _scalars(work_dir):
    lines = []
    for path in sorted(
            __import__('glob').glob(
                osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            lines += [json.loads(line) for line in f if line.strip()]
    return {d['step']: d for d in lines if 'psr_scale' in d}


def test_resume_continues_with_the_scale_of_its_iteration(
        synthetic_root, tmp_path):
    overrides = tiny_run_overrides(synthetic_root, '', 4)
    overrides['default_hooks.checkpoint.interval'] = 2
    overrides[psr_scales_key()] = [2, 4, 8, 16]  # one per iteration
    full = str(tmp_path / 'full')
    overrides['work_dir'] = full
    # on the CPU, where the same steps give the same losses (GPU kernels
    # need not be deterministic)
    result = run_tool('train.py',
                      [IMAGE_CONFIG, '--cfg-options',
                       *as_cfg_options(overrides)],
                      cpu=True)
    assert result.returncode == 0, result.stderr[-3000:]
    uninterrupted = _scalars(full)
    assert [uninterrupted[i]['psr_scale'] for i in (1, 2, 3, 4)] == [
        2, 4, 8, 16]
    # a run interrupted after iteration 2, resumed from its checkpoint
    resumed = str(tmp_path / 'resumed')
    shutil.copytree(full, resumed, ignore=shutil.ignore_patterns(
        'iter_4.pth', '2*'))
    with open(osp.join(resumed, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(resumed, 'iter_2.pth'))
    overrides['work_dir'] = resumed
    result = run_tool('train.py', [
        IMAGE_CONFIG, '--resume', '--cfg-options',
        *as_cfg_options(overrides)
    ], cpu=True)
    assert result.returncode == 0, result.stderr[-3000:]
    after = _scalars(resumed)
    assert sorted(after) == [3, 4]
    for step in (3, 4):
        assert after[step]['psr_scale'] == uninterrupted[step]['psr_scale']
        # and the same losses: optimizer, LR and RNG state were restored
        assert after[step]['lr'] == uninterrupted[step]['lr']
        assert after[step]['loss'] == pytest.approx(
            uninterrupted[step]['loss'], rel=1e-5, abs=1e-7)


def test_scale_finer_than_the_crop_is_refused_before_training(
        synthetic_root, tmp_path):
    overrides = tiny_run_overrides(synthetic_root, str(tmp_path), 2)
    overrides[psr_scales_key()] = [4, 128]  # crops are 64x64
    result = run_tool('train.py',
                      [IMAGE_CONFIG, '--cfg-options',
                       *as_cfg_options(overrides)])
    assert result.returncode != 0
    assert '(128, 128) is finer than the training input (64, 64)' in \
        result.stderr


class _Head:
    level, scales = 'image', [None]

    def named_modules(self):
        return [('decode_head', self)]


class _Runner:
    """Just what before_train_iter reads."""

    def __init__(self, iteration, max_iters, head):
        from mmengine.logging import MessageHub
        self.iter, self.max_iters = iteration, max_iters
        self.model = head
        self.message_hub = MessageHub.get_instance('psr-mixed-test')


def test_mixed_scales_join_every_step_once():
    hook = ProgressiveScaleHook(scales=[4, 8, 16], mixed_scales=[16])
    head = _Head()
    seen = []
    for iteration in (0, 40, 99):
        hook.before_train_iter(_Runner(iteration, 100, head), 0)
        seen.append(head.scales)
    # the fine grid beside every coarse one, not twice when scheduled
    assert seen == [[(4, 4), (16, 16)], [(8, 8), (16, 16)], [(16, 16)]]
    assert hook._schedule()['mixed_scales'] == [[16, 16]]


class _PulledHead(_Head):
    """An image head with a real PSDLoss, whose pull the hook sets."""

    def __init__(self):
        from rss_mmseg.models.losses import PSDLoss
        self.losses = [PSDLoss(uniform_weight=0.003)]


def test_uniform_weights_follow_the_scale_and_are_logged():
    hook = ProgressiveScaleHook(
        scales=[4, 8, 16], uniform_weights=[0.01, 0.003, 0.0])
    head = _PulledHead()
    seen = []
    for iteration in (0, 32, 33, 67, 99):  # milestones at 33 and 67
        runner = _Runner(iteration, 100, head)
        hook.before_train_iter(runner, 0)
        logged = runner.message_hub.get_scalar('train/uniform_weight')
        seen.append((head.scales[0][0], head.losses[0].uniform_weight,
                     logged.current()))
    assert seen == [(4, 0.01, 0.01), (4, 0.01, 0.01), (8, 0.003, 0.003),
                    (16, 0.0, 0.0), (16, 0.0, 0.0)]
    assert hook._schedule()['uniform_weights'] == [0.01, 0.003, 0.0]


@pytest.mark.parametrize('name', ['uniform_weights', 'entropy_weights'])
@pytest.mark.parametrize('kwargs,weights,words', [
    (dict(scales=[4, 8]), [0.01], 'one weight >= 0 per'),
    (dict(scales=[4, 8]), [0.01, -1], 'one weight >= 0'),
    (dict(scales=[4, 8], mode='linear'), [0, 0], "mode='step' only"),
])
def test_bad_weights_per_scale_are_refused(name, kwargs, weights, words):
    with pytest.raises(ValueError, match=f'{name}.*{words}'):
        ProgressiveScaleHook(**kwargs, **{name: weights})


def test_uniform_weights_without_a_pulled_loss_are_refused():
    hook = ProgressiveScaleHook(scales=[4, 8], uniform_weights=[0.01, 0.0])
    runner = _Runner(0, 100, _Head())
    with pytest.raises(ValueError, match='none of them has one'):
        hook.before_train(runner)


def test_entropy_weights_follow_the_scale_and_switch_the_bonus():
    """Each stage's weight reaches the loss (logged), and a weight of 0
    turns the bonus off: the loss's gradient then equals that of a loss
    built without a bonus, and a positive weight turns it back on."""
    import torch

    from rss_mmseg.models.losses import PSDLoss
    from rss_mmseg.models.policy import PixelPolicy

    hook = ProgressiveScaleHook(
        scales=[4, 8], entropy_weights=[0.05, 0.0])
    head = _PulledHead()
    head.losses = [PSDLoss(entropy_weight=0.01)]
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4)
    actions = torch.randint(0, 3, (4, 2, 4, 4))
    rewards = torch.rand(4, 2)
    valid = torch.ones(2, dtype=torch.bool)

    def grad(loss):
        x = logits.clone().requires_grad_()
        loss(PixelPolicy(x), actions, rewards, valid)['loss_psd'].backward()
        return x.grad

    seen = []
    for iteration in (0, 49, 50, 99):
        runner = _Runner(iteration, 100, head)
        hook.before_train_iter(runner, 0)
        logged = runner.message_hub.get_scalar('train/entropy_weight')
        seen.append((head.scales[0][0],
                     float(head.losses[0].entropy.weight), logged.current()))
    assert seen == [(4, 0.05, 0.05), (4, 0.05, 0.05), (8, 0.0, 0.0),
                    (8, 0.0, 0.0)]
    assert torch.allclose(grad(head.losses[0]), grad(PSDLoss()))
    hook.before_train_iter(_Runner(0, 100, head), 0)
    assert not torch.allclose(grad(head.losses[0]), grad(PSDLoss()))
    assert torch.allclose(
        grad(head.losses[0]), grad(PSDLoss(entropy_weight=0.05)))
    assert hook._schedule()['entropy_weights'] == [0.05, 0.0]


def test_entropy_weights_with_an_entropy_target_are_refused():
    from rss_mmseg.models.losses import PSDLoss
    hook = ProgressiveScaleHook(scales=[4, 8], entropy_weights=[0.01, 0.0])
    head = _PulledHead()
    head.losses = [PSDLoss(entropy_target=0.2)]
    with pytest.raises(ValueError, match='entropy_target'):
        hook.before_train(_Runner(0, 100, head))
    head.losses = []
    with pytest.raises(ValueError, match='none of them has one'):
        hook.before_train(_Runner(0, 100, head))


def test_resume_under_another_schedule_warns_and_keeps_the_new_one(
        caplog):
    """Forking a run at a checkpoint with another PSR schedule is allowed
    (the new hook's schedule applies), and the log says so."""
    import logging

    from mmengine.logging import MMLogger
    old = ProgressiveScaleHook(scales=[4, 8, 16, 32])
    new = ProgressiveScaleHook(scales=[4, 8, 16], milestones=[1000, 2000])
    checkpoint = {}
    old.before_save_checkpoint(None, checkpoint)
    logger = MMLogger.get_current_instance()
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING):
            new.after_load_checkpoint(None, checkpoint)
            old.after_load_checkpoint(None, checkpoint)  # same: silent
    finally:
        logger.removeHandler(caplog.handler)
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "'scales': [[4, 4], [8, 8], [16, 16], [32, 32]]" in warnings[0]
    assert 'continuing with the new one' in warnings[0]
    assert new.grid_at(3500, 4000) == new.grid_at(2500, 4000)


def _two_loss_head(num_samples=32):
    """A real image RSSHead with a PSDLoss and a LocalExpectationLoss."""
    from tests.models.test_rss_head_image import build_head
    head = build_head(
        loss=[dict(type='PSDLoss'),
              dict(type='LocalExpectationLoss')],
        num_samples=num_samples)
    head.data_preprocessor = None  # the hook reads its crop size, if any
    return head


def test_losses_samples_and_mixes_follow_the_scale_and_are_logged():
    """Each stage's losses, K and uniform_mix (the head samples from it on
    that grid) reach the head, are logged and saved in the schedule."""
    hook = ProgressiveScaleHook(
        scales=[4, 8], loss_names=[['loss_psd'], ['loss_local']],
        num_samples=[32, 4], uniform_mixes=[0.0, 0.4])
    head = _two_loss_head()
    hook.before_train(_Runner(0, 100, head))
    seen = []
    for iteration in (0, 49, 50, 99):
        runner = _Runner(iteration, 100, head)
        hook.before_train_iter(runner, 0)
        hub = runner.message_hub
        seen.append((head.scales[0][0], head.active_losses, head.num_samples,
                     head.uniform_mix,
                     hub.get_scalar('train/num_samples').current(),
                     hub.get_scalar('train/uniform_mix').current()))
    assert seen == [(4, ['loss_psd'], 32, 0.0, 32, 0.0),
                    (4, ['loss_psd'], 32, 0.0, 32, 0.0),
                    (8, ['loss_local'], 4, 0.4, 4, 0.4),
                    (8, ['loss_local'], 4, 0.4, 4, 0.4)]
    schedule = hook._schedule()
    assert schedule['loss_names'] == [['loss_psd'], ['loss_local']]
    assert schedule['num_samples'] == [32, 4]
    assert schedule['uniform_mixes'] == [0.0, 0.4]


@pytest.mark.parametrize('resumed', [False, True])
def test_losses_switched_off_leave_the_log(resumed):
    """After the switch the log shows the new loss only, not the last
    value of the old one (and its statistics) for the rest of training;
    also when the old values came with a resumed checkpoint's message hub.
    What other hooks log stays."""
    from mmengine.logging import MessageHub
    hook = ProgressiveScaleHook(
        scales=[4, 8], loss_names=[['loss_psd'], ['loss_local']])
    runner = _Runner(0, 100, _two_loss_head())
    hub = runner.message_hub = MessageHub(f'psr-log-test-{resumed}')
    steps = [dict(loss=1.0, **{'decode.loss_psd': 1.0,
                               'decode.psd_region': 0.5}),
             dict(loss=2.0, **{'decode.loss_local': 2.0})]
    if resumed:  # the first step's values were restored, not logged
        for key, value in steps.pop(0).items():
            hub.update_scalar(f'train/{key}', value)
    for outputs in steps:
        hub.update_scalar('train/lr', 0.01)
        for key, value in outputs.items():  # what RuntimeInfoHook does
            hub.update_scalar(f'train/{key}', value)
        hook.after_train_iter(runner, 0, None, outputs)
    keys = set(hub.log_scalars)
    assert keys == {'train/lr', 'train/loss', 'train/decode.loss_local'}


@pytest.mark.parametrize('kwargs,words', [
    (dict(loss_names=[['loss_psd']]), 'one non-empty list'),
    (dict(loss_names=[['loss_psd'], []]), 'one non-empty list'),
    (dict(loss_names=['loss_psd', 'loss_local']), 'one non-empty list'),
    (dict(loss_names=[['a'], ['b']], mode='linear'), "mode='step' only"),
    (dict(num_samples=[4]), 'one int >= 1 per scale'),
    (dict(num_samples=[4, 0]), 'one int >= 1 per scale'),
    (dict(uniform_mixes=[0.1]), r'uniform_mixes.*one weight in \[0, 1\)'),
    (dict(uniform_mixes=[0.0, 1.0]), r'one weight in \[0, 1\) per scale'),
    (dict(uniform_mixes=[0.0, -0.1]), r'one weight in \[0, 1\) per scale'),
    (dict(uniform_mixes=[0.0, 0.1], mode='linear'), "mode='step' only"),
])
def test_bad_losses_per_scale_are_refused(kwargs, words):
    with pytest.raises(ValueError, match=words):
        ProgressiveScaleHook(scales=[4, 8], **kwargs)


@pytest.mark.parametrize('kwargs,words', [
    (dict(loss_names=[['loss_psd'], ['loss_psr']]),
     r"\['loss_psr'\] on grid \(8, 8\).*'loss_psd', 'loss_local'"),
    (dict(loss_names=[['loss_psd'], ['loss_local']], num_samples=[1, 1]),
     r'grid \(4, 4\) PSDLoss.*num_samples >= 2, got 1'),
    (dict(num_samples=[4, 1]), r'grid \(8, 8\) PSDLoss.*>= 2, got 1'),
])
def test_losses_per_scale_the_head_cannot_train_are_refused(kwargs, words):
    hook = ProgressiveScaleHook(scales=[4, 8], **kwargs)
    with pytest.raises(ValueError, match=words):
        hook.before_train(_Runner(0, 100, _two_loss_head()))
