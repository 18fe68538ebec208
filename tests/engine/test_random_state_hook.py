"""RandomStateHook: RNG states in checkpoints, restored on resume only."""
import random
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
import torch
from mmengine.runner import IterBasedTrainLoop
from mmseg.registry import HOOKS

from rss_mmseg.engine.hooks import RandomStateHook
from rss_mmseg.engine.hooks.random_state_hook import (get_random_state,
                                                      set_random_state)


@pytest.fixture(autouse=True)
def keep_global_rng():
    """These tests reseed the global generators; leave them as found."""
    state = get_random_state()
    yield
    set_random_state(state)


def _draw():
    """One number from each generator the hook covers."""
    return (random.random(), float(np.random.rand()), np.random.normal(),
            float(torch.rand(())))


def _runner(iteration: int = 0, epoch: int = 0, hooks=()):
    loop = mock.Mock(spec=IterBasedTrainLoop)
    loop.iter = iteration
    loop.dataloader_iterator = iter(range(1000))
    return SimpleNamespace(
        iter=iteration, epoch=epoch, train_loop=loop, hooks=list(hooks),
        logger=mock.Mock())


def test_state_round_trip_covers_every_generator():
    random.seed(1)
    np.random.seed(1)
    np.random.normal()  # numpy caches the second gaussian: part of the state
    torch.manual_seed(1)
    state = get_random_state()
    first = _draw()
    assert _draw() != first
    set_random_state(state)
    assert _draw() == first


def test_state_loads_with_weights_only_and_no_numpy_globals(tmp_path):
    np.random.seed(3)
    state = get_random_state()
    path = str(tmp_path / 'ckpt.pth')
    torch.save(dict(rss_random_state=state), path)
    # nothing in it needs an allow-list entry (not even numpy's)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    loaded = torch.load(path, weights_only=True)['rss_random_state']
    expected = _draw()
    set_random_state(loaded)
    assert _draw() == expected


def test_save_then_resume_restores_after_the_skipped_batches():
    hook = HOOKS.build(dict(type='RandomStateHook'))
    torch.manual_seed(5)
    np.random.seed(5)
    checkpoint = {}
    hook.before_save_checkpoint(_runner(iteration=3), checkpoint)
    assert checkpoint['rss_random_state']['world_size'] == 1
    expected = _draw()

    # a new process: other seeds, then resume at iteration 3
    torch.manual_seed(0)
    np.random.seed(0)
    runner = _runner(iteration=3)
    original = runner.train_loop.dataloader_iterator
    hook.after_load_checkpoint(runner, checkpoint)
    hook.before_train_epoch(runner)
    for _ in range(3):  # the loop replays the 3 consumed batches,
        _draw()  # whose (num_workers=0) pipeline draws from the RNGs
        next(runner.train_loop.dataloader_iterator)
    assert _draw() == expected  # restored right after the skip
    hook.before_train_iter(runner, batch_idx=3)
    assert runner.train_loop.dataloader_iterator is original
    assert next(original) == 3  # the proxy only counted, never skipped


def test_load_from_does_not_touch_the_rng():
    hook = RandomStateHook()
    torch.manual_seed(7)
    checkpoint = {}
    hook.before_save_checkpoint(_runner(iteration=10), checkpoint)
    torch.manual_seed(8)
    state = get_random_state()
    expected = _draw()
    set_random_state(state)
    runner = _runner(iteration=0)  # load_from: training starts at 0
    hook.after_load_checkpoint(runner, checkpoint)
    hook.before_train_epoch(runner)
    hook.before_train_iter(runner, batch_idx=0)
    assert _draw() == expected


def test_validation_does_not_shift_training_randomness():
    hook = RandomStateHook()
    runner = _runner(iteration=4)
    torch.manual_seed(9)
    state = get_random_state()
    expected = _draw()
    set_random_state(state)
    hook.before_val(runner)
    _draw()  # e.g. a val DataLoader iterator drawing its base seed
    hook.after_val(runner)
    assert _draw() == expected

    hook = RandomStateHook(isolate_val=False)
    set_random_state(state)
    hook.before_val(runner)
    _draw()
    hook.after_val(runner)
    assert _draw() != expected


def test_missing_state_is_a_no_op():
    """Checkpoints written without the hook resume as before."""
    hook = RandomStateHook()
    runner = _runner(iteration=2)
    hook.after_load_checkpoint(runner, {'meta': {}})
    iterator = runner.train_loop.dataloader_iterator
    hook.before_train_epoch(runner)
    assert runner.train_loop.dataloader_iterator is iterator


@pytest.mark.parametrize('kwargs', [dict(key=''), dict(isolate_val=1)])
def test_bad_arguments_are_named(kwargs):
    name = next(iter(kwargs))
    with pytest.raises((ValueError, TypeError), match=name):
        RandomStateHook(**kwargs)
