"""Deferred reward checks: bad values are inert at once, errors come at the
head's next check (after the first step, every ``check_interval`` steps, at
the last iteration), naming the reward, the problem and the iteration."""
import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from mmengine.logging import MessageHub
from mmseg.registry import MODELS

import rss_mmseg  # noqa: F401
from rss_mmseg.models.heads import rss_head
from rss_mmseg.utils import counting
from rss_mmseg.models.rewards.checks import (RewardChecks, RewardError,
                                             check_reward_output,
                                             deferred_checks)
from rss_mmseg.models.rewards.image import (per_image_cell_confusion,
                                            per_image_confusion)
from tests.conftest import rank_start_method
from tests.models.utils import make_data_samples

NUM_CLASSES = 4


@MODELS.register_module(force=True)
class _FlakyReward:
    """An image reward that goes bad (``mode``) on the given calls."""
    level = 'image'
    value_range = (0.0, 1.0)

    def __init__(self, mode, bad_calls=(2, )):
        self.mode = mode
        self.bad_calls = set(bad_calls)
        self.calls = 0

    def __call__(self, actions, data_samples):
        K, B = actions.shape[:2]
        rewards = (actions == 0).float().mean((-2, -1))
        if self.calls in self.bad_calls:
            if self.mode == 'nan':
                rewards[0, 1] = math.nan
            elif self.mode == 'inf':
                rewards[1, 0] = math.inf
            elif self.mode == 'range':
                rewards = rewards + 1.5
        self.calls += 1
        return rewards, torch.ones(
            B, dtype=torch.bool, device=actions.device)

    def __repr__(self):
        return f'_FlakyReward(mode={self.mode!r})'


def build_head(reward, **kwargs):
    torch.manual_seed(0)  # the same samples whatever ran before
    kwargs.setdefault('num_samples', 3)
    kwargs.setdefault('scales', 2)
    return MODELS.build(
        dict(
            type='RSSHead',
            head=dict(
                type='FCNHead',
                in_channels=8,
                channels=8,
                num_convs=1,
                concat_input=False,
                num_classes=NUM_CLASSES),
            reward=reward,
            loss=dict(type='PSDLoss'),
            **kwargs))


def batch(bad_label=None):
    gen = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, 8, 4, 4, generator=gen)]
    gt = torch.randint(0, NUM_CLASSES, (2, 16, 16), generator=gen)
    gt[:, 0] = 255
    if bad_label is not None:
        gt[1, 5, 5] = bad_label
    return feats, make_data_samples(gt)


def step(head, bad_label=None):
    """One training step; the loss items and the policy's gradient."""
    feats, samples = batch(bad_label)
    head.zero_grad()
    losses = head.loss(feats, samples, None)
    losses['loss_psd'].backward()
    return losses, head.head.conv_seg.weight.grad.clone()


def _bad_step_args(mode):
    """(reward config, bad_label) making step 3 (iteration 2) bad."""
    if mode == 'reference':
        return dict(type='ImageMIoUReward'), 9
    return dict(type='_FlakyReward', mode=mode), None


WORDS = {
    'nan': "_FlakyReward(mode='nan') returned non-finite rewards (nan)",
    'inf': "_FlakyReward(mode='inf') returned non-finite rewards (inf)",
    'range': "_FlakyReward(mode='range') returned rewards up to 1.75, "
             'outside its declared value_range (0.0, 1.0)',
    'reference': ('ImageMIoUReward(ignore_index=255, num_classes=None, '
                  "classes='union'): reference value 9 is not a class "
                  'index for num_classes=4'),
}


@pytest.mark.parametrize('mode', list(WORDS))
def test_bad_batch_trains_nothing_and_raises_at_the_next_check(
        mode, iteration):
    reward, bad_label = _bad_step_args(mode)
    head = build_head(reward, check_interval=3)
    for i in range(3):  # the first step is checked; the third is bad
        iteration(i)
        losses, grad = step(head, bad_label if i == 2 else None)
        assert torch.isfinite(grad).all()
        assert (grad.abs().sum() == 0) == (i == 2)
        assert losses['bad_reward'].item() == float(i == 2)
        assert math.isfinite(losses['loss_psd'].item())
    iteration(3)
    with pytest.raises(RewardError) as info:
        step(head)  # the check after 3 steps
    message = str(info.value)
    assert WORDS[mode] in message
    assert 'first at training iteration 3' in message
    assert '1 bad batch(es) in the last 3 step(s)' in message
    assert "on_bad_reward='skip'" in message


def test_check_interval_1_raises_at_the_bad_step(iteration):
    head = build_head(dict(type='_FlakyReward', mode='nan'), check_interval=1)
    for i in range(2):
        iteration(i)
        step(head)
    iteration(2)
    with pytest.raises(RewardError, match='non-finite.*iteration 3'):
        step(head)


def test_the_last_iteration_is_checked(iteration):
    head = build_head(dict(type='_FlakyReward', mode='range', bad_calls=[1]))
    iteration(0, max_iters=3)
    step(head)
    iteration(1, max_iters=3)
    step(head)  # bad, not checked yet (check_interval=50)
    iteration(2, max_iters=3)
    with pytest.raises(RewardError, match=r'value_range.*iteration 2'):
        step(head)


def test_leaving_training_mode_checks_unchecked_steps(iteration):
    head = build_head(dict(type='_FlakyReward', mode='nan'))
    for i in range(3):
        iteration(i)
        step(head)  # the third is bad, unchecked (check_interval=50)
    with pytest.raises(RewardError, match='first at training iteration 3'):
        head.eval()  # e.g. validation, or early stopping after it
    head.eval()  # nothing unchecked left: no sync, no error
    assert not head.training


def test_skip_counts_and_warns_at_the_check(iteration, monkeypatch):
    logged = []
    monkeypatch.setattr(rss_head, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    head = build_head(
        dict(type='_FlakyReward', mode='nan', bad_calls=[1, 2]),
        on_bad_reward='skip',
        check_interval=3)
    for i in range(4):
        iteration(i)
        losses, grad = step(head)
        assert losses['bad_reward'].item() == float(i in (1, 2))
        assert (grad.abs().sum() == 0) == (i in (1, 2))
        assert logged == [] if i < 3 else len(logged) == 1
    assert head._bad_reward_batches == 2
    assert logged[0].startswith('skipped 2 batch(es) (2 so far)')
    assert 'first at training iteration 2 (2 batches)' in logged[0]


def test_without_a_runner_steps_are_counted_by_loss_calls():
    hub = MessageHub.get_current_instance()
    saved = hub.runtime_info.pop('iter', None)
    try:
        head = build_head(dict(type='_FlakyReward', mode='nan', bad_calls=[0]))
        with pytest.raises(RewardError, match='first at loss call 1'):
            step(head)
    finally:
        if saved is not None:
            hub.update_info('iter', saved)


def test_check_interval_must_be_a_positive_int():
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match='check_interval'):
            build_head(dict(type='ImageMIoUReward'), check_interval=bad)


def test_check_reward_output_alone_raises_at_once():
    reward = _FlakyReward('nan')
    actions = torch.zeros(3, 2, 4, 4, dtype=torch.long)
    rewards = torch.rand(3, 2)
    valid = torch.tensor([True, False])
    rewards[0, 1] = math.nan  # an invalid image: not scored, no error
    out, _ = check_reward_output(reward, (rewards, valid), actions, 'image')
    assert out.dtype == torch.float32
    rewards[0, 0] = -math.inf
    with pytest.raises(RewardError, match=r'non-finite rewards \(-inf\)'):
        check_reward_output(reward, (rewards, valid), actions, 'image')
    with pytest.raises(RewardError, match=r'rewards up to 2, outside its '
                       r'declared value_range \(0.0, 1.0\)'):
        check_reward_output(reward, (torch.full((3, 2), 2.0), valid),
                            actions, 'image')
    # inside a record: noted, not raised
    checks = RewardChecks()
    with deferred_checks(checks):
        check_reward_output(reward, (rewards, valid), actions, 'image')
    report = checks.collect()
    assert [p.kind for p in report.problems] == ['non_finite']
    assert checks.collect() is None  # collect resets


def test_record_keeps_one_slot_per_check_and_reduces_values():
    checks = RewardChecks()
    for step_number, (bad, low, high) in enumerate([(False, 0, 3), (
            True, -2, 3), (True, 0, 7)]):
        checks.begin_call(step_number, torch.device('cpu'))
        checks.note('reference', torch.tensor(bad), torch.tensor(low),
                    torch.tensor(high), lambda lo, hi: f'[{lo:g}, {hi:g}]')
        checks.note('action', False, 0, 3, lambda lo, hi: 'actions',
                    key=('action', 4))
        assert torch.equal(checks.end_call(), torch.tensor(bad))
    report = checks.collect()
    assert report.bad_calls == 2
    [problem] = report.problems
    assert problem == ('reference', 2, 1, '[-2, 7]')


@pytest.mark.parametrize('reads_are_free', [True, False])
def test_bad_values_in_confusions_are_noted_and_counted_inertly(
        reads_are_free, monkeypatch):
    """Both code paths (CPU shortcuts, accelerator) give the same counts
    and notes; called alone, the functions raise."""
    monkeypatch.setattr(counting, 'reads_are_free',
                        lambda device: reads_are_free)
    gen = torch.Generator().manual_seed(1)
    actions = torch.randint(0, 4, (3, 2, 6, 6), generator=gen)
    reference = torch.randint(0, 4, (2, 6, 6), generator=gen)
    reference[0, 0] = 255
    good = per_image_confusion(actions, reference, 4)
    assert torch.equal(
        per_image_cell_confusion(actions, reference, 4), good)
    assert good.sum() == 3 * (2 * 36 - 6)
    bad_actions = actions.clone()
    bad_actions[1, 0, 2, 2] = 6
    bad_reference = reference.clone()
    bad_reference[1, 3, 3] = -3
    for fn in (per_image_confusion, per_image_cell_confusion):
        with pytest.raises(ValueError, match='action value 6 .*=4'):
            fn(bad_actions, reference, 4)
        with pytest.raises(ValueError, match='reference value -3 is neg'):
            fn(actions, bad_reference, 4)
        checks = RewardChecks(num_classes=4)
        checks.begin_call(5, actions.device)
        with deferred_checks(checks):
            counts = fn(bad_actions, bad_reference, 4)
        assert checks.end_call()
        # the bad action counted as class 3, the bad pixel as ignored
        assert counts.shape == (3, 2, 4, 4)
        assert counts.sum() == good.sum() - 3
        texts = [(p.kind, p.first, p.text)
                 for p in checks.collect().problems]
        assert texts == [
            ('reference', 5, 'reference value -3 is negative (nor the '
             'ignore_index 255); check ignore_index and num_classes'),
            ('action', 5,
             'action value 6 is not a class index for num_classes=4')
        ]


def test_a_runner_without_extra_hooks_stops_at_the_last_iteration(
        synthetic_root, tmp_path):
    """A real mmengine run: the reward goes bad at iteration 2 of 3; the
    head alone (no hook in the config) stops the run at the last iteration
    with the iteration of the bad batch, and the weights stayed finite."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from tests.conftest import REPO_ROOT, tiny_run_overrides
    cfg = Config.fromfile(
        os.path.join(REPO_ROOT, 'configs/rss',
                     'rss-image_fast-scnn_1xb8-1k_synthetic-128x128.py'))
    cfg.merge_from_dict(
        tiny_run_overrides(synthetic_root, str(tmp_path / 'work'), 3))
    cfg.model.decode_head.reward = dict(
        type='_FlakyReward', mode='inf', bad_calls=[1])
    cfg.model.decode_head.num_samples = 2
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    runner = Runner.from_cfg(cfg)
    with pytest.raises(RewardError) as info:
        runner.train()
    assert runner.iter == 2  # iterations 1 and 2 ran; 3 raised
    message = str(info.value)
    assert 'non-finite rewards (inf), first at training iteration 2' \
        in message
    assert '1 bad batch(es) in the last 2 step(s)' in message
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank, port, out_dir):
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=2)
    try:
        checks = RewardChecks()
        checks.begin_call(10 + rank, torch.device('cpu'))
        checks.note('range', torch.tensor(rank == 1),
                    torch.tensor(-rank * 0.5), torch.tensor(1.0 + rank),
                    lambda lo, hi: f'[{lo:g}, {hi:g}]')
        checks.end_call()
        torch.save(checks.collect(), os.path.join(out_dir, f'{rank}.pt'))
    finally:
        dist.destroy_process_group()


def test_every_rank_reads_every_ranks_problems(tmp_path):
    """Only rank 1 saw the bad reward; both ranks raise the same error."""
    mp.start_processes(
        _worker,
        args=(_free_port(), str(tmp_path)),
        nprocs=2,
        join=True,
        start_method=rank_start_method())
    reports = [
        torch.load(tmp_path / f'{r}.pt', weights_only=False)
        for r in range(2)
    ]
    assert reports[0] == reports[1]
    assert reports[0].bad_calls == 1
    assert reports[0].problems == [('range', 1, 11, '[-0.5, 2]')]
