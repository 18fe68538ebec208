"""Reward fine-tuning: anchor the policy to the frozen starting model."""
import copy
import re
from typing import Optional, Tuple

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import _load_checkpoint
from mmseg.registry import HOOKS
from torch import nn

from ...utils.anchor import anchored_heads

MODES = ('train', 'eval')
# Checkpoint key under which the starting checkpoint's path is saved, so
# that --resume (which loads the resumed checkpoint, not load_from) builds
# the same reference.
CHECKPOINT_KEY = 'rss_policy_anchor'


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model


def frozen_reference(model: nn.Module, mode: str = 'train') -> nn.Module:
    """A frozen copy of ``model`` (weights as they are now) to anchor to.

    No gradients. ``mode='train'``: the copy runs the policy's training
    forward (normalization with the batch's statistics, dropout and drop
    path on: ``RSSEncoderDecoder`` replays the policy's masks), but its
    running statistics never change (momentum 0); ``'eval'``: plain
    ``eval()`` (running statistics, no dropout, as at test time).
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    setter = getattr(model, 'set_anchor', None)
    held = getattr(model, 'anchor', None)
    if setter is not None:
        setter(None)  # never copy a previous reference into the new one
    try:
        ref = copy.deepcopy(model)
    finally:
        if setter is not None:
            setter(held)
    ref.requires_grad_(False)
    ref.train(mode == 'train')
    for module in ref.modules():
        if getattr(module, 'running_mean', None) is not None and hasattr(
                module, 'momentum'):
            module.momentum = 0.0  # BatchNorm, SyncBN: stats never change
    return ref


@HOOKS.register_module()
class PolicyAnchorHook(Hook):
    """Build the frozen starting policy that anchored RSS heads are pulled to.

    Reward fine-tuning (``RSSHead(anchor_weight > 0)``) adds ``anchor_weight
    * KL(pi_theta || pi_start)`` to the loss, as RL fine-tuning of language
    models does, so the tuned policy improves its reward without drifting
    far from the model it started from. Before training this hook makes a
    frozen copy of the model, loads the starting weights into it and hands
    it to the segmentor (``RSSEncoderDecoder.set_anchor``), which runs it on
    every training batch. The copy is not a submodule: it is not saved in
    checkpoints, not trained, not wrapped by DDP.

    The starting weights are read from the file, not taken from the model:
    on ``--resume`` the model holds the resumed weights. The file is, in
    this order: ``checkpoint`` if given; on ``--resume``, the starting
    checkpoint recorded in the resumed checkpoint (this hook saves its path
    there, under ``'rss_policy_anchor'``), so a resumed run anchors to the
    same reference; otherwise ``load_from``. The reference sees the batch
    images only: the anchor never involves labels.

    Args:
        checkpoint (str, optional): The starting model's checkpoint.
            Defaults to None (``load_from``).
        mode (str): How the reference runs. ``'train'`` (default): as the
            policy's training forward (BatchNorm with the batch's
            statistics, its running statistics untouched; dropout and drop
            path with the policy's own masks), so the KL is exactly zero
            while the weights are the starting ones and measures only how
            far the weights moved. ``'eval'``: plain ``eval()``, the
            deployed starting model; the train/eval gap (batch vs running
            statistics, dropout) then counts as divergence (Fast-SCNN on
            CamVid: a KL of 0.02-0.03 at the start, about half of the
            0.05-0.06 after 1k unanchored fine-tuning iterations).
    """
    priority = 'NORMAL'  # after RequireCheckpointHook (VERY_HIGH)

    def __init__(self,
                 checkpoint: Optional[str] = None,
                 mode: str = 'train') -> None:
        if checkpoint is not None and (not isinstance(checkpoint, str)
                                       or not checkpoint):
            raise ValueError('checkpoint must be a path or None (load_from), '
                             f'got {checkpoint!r}')
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
        self.checkpoint = checkpoint
        self.mode = mode
        self.path: Optional[str] = None  # the file the reference came from
        self._recorded: Optional[str] = None  # from the loaded checkpoint

    # -- which file ---------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        record = checkpoint.get(CHECKPOINT_KEY)
        self._recorded = record.get('checkpoint') if isinstance(
            record, dict) else None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.path is not None:
            checkpoint[CHECKPOINT_KEY] = dict(checkpoint=self.path)

    def starting_checkpoint(self, runner) -> Tuple[str, str]:
        """The starting model's file and where its name came from."""
        if self.checkpoint is not None:
            return self.checkpoint, 'PolicyAnchorHook(checkpoint=...)'
        if runner.iter > 0 or runner.epoch > 0:  # resumed
            if self._recorded is None:
                raise ValueError(
                    f'PolicyAnchorHook: the run resumed at iteration '
                    f'{runner.iter} from a checkpoint that does not record '
                    'the starting model of the fine-tuning (it was not '
                    'saved by a run with PolicyAnchorHook), and load_from '
                    'names the resumed checkpoint, not the starting one. '
                    "Fix: dict(type='PolicyAnchorHook', checkpoint=PATH/TO/"
                    'STARTING.pth) in custom_hooks')
            return self._recorded, 'the resumed checkpoint'
        load_from = runner.cfg.get('load_from') or getattr(
            runner, '_load_from', None)
        if load_from:
            return load_from, 'load_from'
        raise ValueError(
            'PolicyAnchorHook anchors the fine-tuned policy to its starting '
            'model, but no starting checkpoint is given. Fix: --cfg-options '
            'load_from=PATH/TO/CHECKPOINT.pth (or PolicyAnchorHook('
            'checkpoint=...) in custom_hooks)')

    # -- building -----------------------------------------------------------
    def before_train(self, runner) -> None:
        model = _unwrap(runner.model)
        self.check_model(model)
        path, source = self.starting_checkpoint(runner)
        self.attach(model, path, source)
        runner.logger.info(
            f'PolicyAnchorHook: '
            f'{", ".join(name for name, _ in anchored_heads(model))} anchored '
            f'to the starting policy of {path} ({source}; reference in '
            f'{self.mode} mode)')

    def after_train(self, runner) -> None:
        _unwrap(runner.model).set_anchor(None)  # free the copy

    @staticmethod
    def check_model(model: nn.Module) -> None:
        if not callable(getattr(model, 'set_anchor', None)):
            raise TypeError(
                f'PolicyAnchorHook needs an RSSEncoderDecoder (it runs the '
                f'frozen starting model on each batch), got '
                f"{type(model).__name__}. Fix: model.type="
                "'RSSEncoderDecoder'")
        if not anchored_heads(model):
            raise ValueError(
                'PolicyAnchorHook: no head has anchor_weight > 0, so the '
                'anchor would do nothing. Fix: set model.decode_head.'
                'anchor_weight (e.g. 1.0), or remove PolicyAnchorHook from '
                'custom_hooks')

    def attach(self,
               model: nn.Module,
               path: Optional[str] = None,
               source: str = 'checkpoint') -> nn.Module:
        """Build the reference from ``path`` (None: the model's current
        weights, e.g. to time training steps) and attach it to ``model``."""
        model = _unwrap(model)
        self.check_model(model)
        ref = frozen_reference(model, self.mode)
        if path is not None:
            load_reference(ref, path, source)
        model.set_anchor(ref)
        self.path = path
        return ref


def load_reference(ref: nn.Module, path: str, source: str) -> None:
    """Load the checkpoint ``path`` into ``ref``; every weight the
    reference's forward needs (backbone, neck, anchored heads) must be
    there."""
    try:
        checkpoint = _load_checkpoint(path, map_location='cpu')
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f'PolicyAnchorHook: the starting checkpoint {path} (from '
            f'{source}) is not there ({error}). Fix: point load_from (or '
            'PolicyAnchorHook(checkpoint=...)) at the starting model') \
            from error
    state = checkpoint.get('state_dict', checkpoint) if isinstance(
        checkpoint, dict) else checkpoint
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    missing, _ = ref.load_state_dict(state, strict=False)
    needed = tuple(f'{name}.' for name in ('backbone', 'neck'))
    heads = tuple(f'{name}.' for name, _ in anchored_heads(ref))
    missing = [
        key for key in missing
        if (key.startswith(needed) or key.startswith(heads))
        and '.losses.' not in key
    ]
    if missing:
        shown = ', '.join(missing[:5]) + (', ...' if len(missing) > 5 else '')
        raise ValueError(
            f'PolicyAnchorHook: {path} (from {source}) is not a checkpoint '
            f'of this model: {len(missing)} weight(s) the starting policy '
            f'needs are missing ({shown}). Fix: point load_from (or '
            'PolicyAnchorHook(checkpoint=...)) at the checkpoint the '
            'fine-tuning starts from')
