"""Save the random number generators in checkpoints for exact resume."""
import random
import warnings
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import (all_gather_object, get_rank, get_world_size,
                           is_distributed)
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import IterBasedTrainLoop
from mmseg.registry import HOOKS

RandomState = Dict[str, Any]


def get_random_state() -> RandomState:
    """The states of python ``random``, numpy's global RNG and torch (CPU,
    and every CUDA device when available).

    Everything is stored as tensors, ints, floats and strings, so a
    checkpoint holding it loads under torch>=2.6 ``weights_only=True``
    without new allow-list entries.
    """
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_key, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = dict(
        python=dict(
            version=int(py_version),
            internal=torch.tensor(py_internal, dtype=torch.int64),
            gauss_next=None if py_gauss is None else float(py_gauss)),
        numpy=dict(
            bit_generator=str(np_name),
            key=torch.from_numpy(np.asarray(np_key, dtype=np.int64)),
            pos=int(np_pos),
            has_gauss=int(np_has_gauss),
            cached_gaussian=float(np_gauss)),
        torch=torch.get_rng_state(),
        cuda=[])
    if torch.cuda.is_available():
        state['cuda'] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def set_random_state(state: RandomState) -> None:
    """Restore states written by :func:`get_random_state` (its tensors may
    have been loaded to any device, e.g. by ``Runner.resume``)."""
    py = state['python']
    random.setstate((py['version'], tuple(py['internal'].tolist()),
                     py['gauss_next']))
    npy = state['numpy']
    np.random.set_state(
        (npy['bit_generator'], npy['key'].cpu().numpy().astype(np.uint32),
         npy['pos'], npy['has_gauss'], npy['cached_gaussian']))
    torch.set_rng_state(state['torch'].cpu())
    cuda = state.get('cuda') or []
    if cuda and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
        else:
            warnings.warn(
                f'checkpoint holds {len(cuda)} CUDA RNG states but '
                f'{torch.cuda.device_count()} devices are visible: CUDA '
                'random streams are not restored')


class _RestoreAfterSkip:
    """Iterator proxy that calls ``restore`` after ``skip`` batches.

    ``IterBasedTrainLoop.run`` fast-forwards a resumed run by fetching (and
    discarding) the batches already trained on; the RNG must be restored
    after that, right before the first new batch is fetched.
    """

    def __init__(self, iterator, skip: int, restore) -> None:
        self.iterator = iterator
        self.remaining = skip
        self.restore = restore
        self.done = False

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.iterator)
        self.remaining -= 1
        if self.remaining == 0 and not self.done:
            self.restore()
            self.done = True
        return batch


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Put the RNG states in checkpoints and restore them on ``--resume``.

    With it, a resumed run draws the same data augmentations and the same
    sampled actions (RSS samples its action maps from torch's global RNG)
    as the uninterrupted run, so its losses match to float precision.

    What mmengine 0.10.7 does, and why the hook works as it does:

    - ``Runner.resume`` restores iteration, optimizer, param schedulers and
      the message hub but no RNG state. It re-seeds (``set_randomness``)
      only when the checkpoint's seed differs from ``randomness.seed``, and
      only after ``after_load_checkpoint``; by then the train dataloader
      (sampler seed, worker seeds) is already built with the config's seed.
      Exact resume therefore needs a fixed ``randomness.seed`` (our
      default_runtime sets 0); with ``seed=None`` the data order differs.
    - ``after_load_checkpoint`` runs for ``load_from`` as well as for
      ``--resume``. The state is kept and applied only when training starts
      at a nonzero iteration/epoch, i.e. on resume; loading weights never
      touches the RNG.
    - ``IterBasedTrainLoop`` skips the consumed batches by fetching them
      (after ``before_train_epoch``). ``InfiniteSampler`` draws its order
      from its own generator seeded by the config seed, and workers are
      seeded by ``worker_init_fn(seed, rank, worker_id)`` only, so the skip
      replays order and worker-side augmentation exactly. With
      ``num_workers=0`` the pipeline draws from the main process' numpy and
      python RNGs, which the skip advances from the fresh seed. The states
      are therefore restored right after the skip (through a proxy of
      ``train_loop.dataloader_iterator`` that is removed again at the first
      ``before_train_iter``), which is exact with and without workers.
      Epoch-based loops do not skip: the states are restored at
      ``before_train_epoch``.
    - Validation draws from torch's RNG (a DataLoader iterator draws its
      base seed), after the checkpoint of the same iteration is saved. With
      ``isolate_val`` the states are saved before and restored after each
      validation, so training randomness does not depend on whether (or
      how often) it validates, and a resumed run matches a run that
      validated at the resume point.
    - ``Runner.save_checkpoint`` runs on rank 0 only. When distributed, the
      states of all ranks are gathered (one small ``all_gather_object``) in
      ``after_train_iter``/``after_train_epoch`` of the iterations where a
      ``CheckpointHook`` is about to save, so each rank gets its own state
      back. A checkpoint from another world size restores rank 0's state on
      every rank, with a warning.

    Float non-determinism (e.g. CUDA atomics; set ``randomness.deterministic``)
    is outside the RNG and not covered.

    Args:
        key (str): Checkpoint key of the states.
            Defaults to ``'rss_random_state'``.
        isolate_val (bool): Save and restore the states around validation.
            Defaults to True.
    """
    # after the logger and visualization hooks, before CheckpointHook
    # (VERY_LOW), so the gathered states are those the checkpoint describes
    priority = 'LOW'

    def __init__(self,
                 key: str = 'rss_random_state',
                 isolate_val: bool = True) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError(f'key must be a non-empty string, got {key!r}')
        if not isinstance(isolate_val, bool):
            raise TypeError(
                f'isolate_val must be a bool, got {isolate_val!r}')
        self.key = key
        self.isolate_val = isolate_val
        self._pending: Optional[Dict[str, Any]] = None
        self._gathered: Optional[tuple] = None
        self._val_state: Optional[RandomState] = None
        self._proxy: Optional[_RestoreAfterSkip] = None

    # -- saving -------------------------------------------------------------
    @staticmethod
    def _checkpoint_due(runner, by_epoch: bool) -> bool:
        """Whether a ``CheckpointHook`` saves at the end of this iter/epoch."""
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook):
                continue
            if by_epoch and hook.by_epoch and (
                    hook.every_n_epochs(runner, hook.interval,
                                        hook.save_begin) or
                (hook.save_last and hook.is_last_train_epoch(runner))):
                return True
            if not by_epoch and not hook.by_epoch and (
                    hook.every_n_train_iters(runner, hook.interval,
                                             hook.save_begin) or
                (hook.save_last and hook.is_last_train_iter(runner))):
                return True
        return False

    def _gather(self, runner, by_epoch: bool) -> None:
        if is_distributed() and self._checkpoint_due(runner, by_epoch):
            self._gathered = (runner.iter, runner.epoch,
                              all_gather_object(get_random_state()))

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        self._gather(runner, by_epoch=False)

    def after_train_epoch(self, runner) -> None:
        self._gather(runner, by_epoch=True)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        states: List[RandomState] = [get_random_state()]
        world_size = get_world_size()
        gathered, self._gathered = self._gathered, None
        if world_size > 1:
            if gathered is not None and gathered[:2] == (runner.iter,
                                                         runner.epoch):
                states = gathered[2]
            else:
                runner.logger.warning(
                    'RandomStateHook: per-rank RNG states were not gathered '
                    'for this checkpoint (saved outside CheckpointHook?); '
                    "only rank 0's state is stored")
        checkpoint[self.key] = dict(
            version=1, world_size=world_size, states=states)

    # -- restoring ----------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # load_from and resume both land here; applied only on resume
        self._pending = checkpoint.get(self.key)

    def _restore_pending(self, runner) -> None:
        saved, self._pending = self._pending, None
        states = saved['states']
        rank, world_size = get_rank(), get_world_size()
        if len(states) == world_size:
            state = states[rank]
        else:
            state = states[0]
            if world_size > 1 or len(states) > 1:
                runner.logger.warning(
                    f'RandomStateHook: checkpoint has RNG states of '
                    f'{len(states)} rank(s), this run has {world_size}; '
                    "every rank restores rank 0's state")
        set_random_state(state)

    def before_train_epoch(self, runner) -> None:
        if self._pending is None:
            return
        if runner.iter == 0 and runner.epoch == 0:
            self._pending = None  # load_from: weights only, RNG untouched
            return
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop) and loop.iter > 0:
            self._proxy = _RestoreAfterSkip(loop.dataloader_iterator,
                                            loop.iter,
                                            lambda: self._restore_pending(
                                                runner))
            loop.dataloader_iterator = self._proxy
        else:
            self._restore_pending(runner)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        if self._proxy is None:
            return
        proxy, self._proxy = self._proxy, None
        runner.train_loop.dataloader_iterator = proxy.iterator
        if not proxy.done:
            runner.logger.warning(
                'RandomStateHook: the train loop did not fast-forward its '
                'dataloader as expected; RNG states restored late, resume '
                'is not exact')
            self._restore_pending(runner)

    # -- validation ---------------------------------------------------------
    def before_val(self, runner) -> None:
        if self.isolate_val:
            self._val_state = get_random_state()

    def after_val(self, runner) -> None:
        if self._val_state is not None:
            set_random_state(self._val_state)
            self._val_state = None
