"""PSR: drive the action grid of image-level RSS heads by iteration."""
import bisect
import logging
from typing import List, Optional, Sequence, Union

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from rss_mmseg.models.policy import ScaleSpec, ScaleType, as_grid

MODES = ('step', 'linear')


@HOOKS.register_module()
class ProgressiveScaleHook(Hook):
    """Progressive Scale Rewards: coarse action grids first, finer later.

    Before every training iteration it sets ``scales`` on each image-level
    :class:`~rss_mmseg.models.heads.RSSHead` of the model to the grid of
    that iteration and logs it (``psr_scale``: cell rows). The grid is a
    pure function of the iteration, so ``--resume`` at iteration ``k``
    continues with the grid of iteration ``k``; the schedule is also saved
    in the checkpoint, and resuming under a different schedule warns.

    Args:
        scales (Sequence): Grids, coarse to fine: each an int ``s``
            (s x s cells), ``(rows, cols)`` or None (full resolution,
            only as the last one).
        milestones (Sequence[int | float], optional): ``mode='step'``:
            iterations at which to move to the next grid
            (``len(scales) - 1`` of them, increasing); floats in (0, 1) are
            fractions of ``max_iters``. Defaults to equal parts of
            training.
        mode (str): ``'step'`` (piecewise constant) or ``'linear'`` (the
            cell count per side interpolated linearly from the first to the
            last of two or more int/tuple grids, rounded). Defaults to
            'step'.
        mixed_scales (Sequence, optional): Grids added to every step beside
            the scheduled one (unless equal to it), e.g. ``[32]`` keeps a
            fine grid, on which a small class can be a cell's majority, in
            training from the first iteration. The head averages the
            losses of its scales. Defaults to none.
        uniform_weights (Sequence[float], optional): ``mode='step'`` only:
            the ``uniform_weight`` (pull toward the uniform policy) of the
            heads' losses on each grid, one per scale. The pull per cell
            does not shrink as the grid gets finer while one image
            reward's credit per cell does, so a weight that keeps small
            classes sampled on a coarse grid can flood a fine one
            (docs/method.md section 12). Logged as ``uniform_weight``.
            Defaults to None (the losses' own weights throughout).
        entropy_weights (Sequence[float], optional): ``mode='step'`` only:
            the fixed entropy-bonus weight of the heads' losses on each
            grid, one per scale, e.g. to switch the bonus off on the finest
            grid, where the cell entropy rose under the config's fixed
            weight (docs/method.md section 12). Not with an adaptive
            ``entropy_target``. Logged as ``entropy_weight``. Defaults to
            None (the losses' own weights throughout).
        loss_names (Sequence[Sequence[str]], optional): ``mode='step'``
            only: the ``loss_name`` of each head loss trained on each grid,
            one list per scale, e.g. ``[['loss_psd']] * 3 +
            [['loss_local']]`` for a head with a ``PSDLoss`` and a
            ``LocalExpectationLoss``: sampled pair credit on the coarse
            grids, exact one-cell credit on the finest, where PSD's pairs
            differ on few cells (docs/method.md section 12). A loss that is
            not named on a grid is not run there (no reward queries). With
            ``mixed_scales`` they apply to every grid of the step.
            Defaults to None (every loss on every grid).
        num_samples (Sequence[int], optional): ``mode='step'`` only: the
            heads' ``num_samples`` (K) on each grid, one per scale, e.g.
            fewer samples where each is scored with all its one-cell
            variants. Logged as ``num_samples``. Defaults to None (the
            heads' own K throughout).
        uniform_mixes (Sequence[float], optional): ``mode='step'`` only:
            the heads' ``uniform_mix`` (weight of the uniform distribution
            mixed into the sampling policy) on each grid, one per scale in
            [0, 1), e.g. exploration on the fine grids only, where the
            policy has pushed small classes to probability ~1e-5 and a
            class that is never sampled gets no credit. The losses weight
            each cell's credit by ``pi / q``. Logged as ``uniform_mix``.
            Defaults to None (the heads' own ``uniform_mix`` throughout).
    """
    priority = 'NORMAL'

    def __init__(self,
                 scales: Sequence[ScaleSpec],
                 milestones: Optional[Sequence[Union[int, float]]] = None,
                 mode: str = 'step',
                 mixed_scales: Sequence[ScaleSpec] = (),
                 uniform_weights: Optional[Sequence[float]] = None,
                 entropy_weights: Optional[Sequence[float]] = None,
                 loss_names: Optional[Sequence[Sequence[str]]] = None,
                 num_samples: Optional[Sequence[int]] = None,
                 uniform_mixes: Optional[Sequence[float]] = None) -> None:
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
        if not scales:
            raise ValueError('ProgressiveScaleHook needs at least one scale')
        self.grids: List[ScaleType] = [as_grid(s) for s in scales]
        if None in self.grids[:-1]:
            raise ValueError('None (full resolution) can only be the last '
                             f'scale, got scales={list(scales)}')
        if mode == 'linear' and (len(self.grids) < 2 or None in self.grids):
            raise ValueError("mode='linear' interpolates between the first "
                             'and the last of two or more int or (rows, '
                             f'cols) scales, got scales={list(scales)}')
        if milestones is not None:
            if mode != 'step':
                raise ValueError("milestones apply to mode='step' only")
            if len(milestones) != len(self.grids) - 1:
                raise ValueError(
                    f'{len(self.grids)} scales need {len(self.grids) - 1} '
                    f'milestones (when to move to the next), got '
                    f'{list(milestones)}')
            if list(milestones) != sorted(milestones) or any(
                    m <= 0 for m in milestones):
                raise ValueError('milestones must be positive and '
                                 f'increasing, got {list(milestones)}')
        self.uniform_weights = self._stage_weights('uniform_weights',
                                                   uniform_weights, mode)
        self.entropy_weights = self._stage_weights('entropy_weights',
                                                   entropy_weights, mode)
        self.loss_names = self._stage_loss_names(loss_names, mode)
        if num_samples is not None and (mode != 'step' or len(
                num_samples) != len(self.grids) or any(
                    not isinstance(k, int) or k < 1 for k in num_samples)):
            raise ValueError(
                "num_samples (mode='step' only) must be one int >= 1 per "
                f'scale ({len(self.grids)} scales), got {num_samples!r}')
        self.num_samples = None if num_samples is None else list(num_samples)
        self.uniform_mixes = self._stage_weights(
            'uniform_mixes', uniform_mixes, mode, below=1.0)
        self.mixed: List[ScaleType] = [as_grid(s) for s in mixed_scales]
        self.scales = list(scales)
        self.milestones = None if milestones is None else list(milestones)
        self.mode = mode
        self.max_iters: Optional[int] = None

    def _stage_weights(self,
                       name: str,
                       weights: Optional[Sequence[float]],
                       mode: str,
                       below: Optional[float] = None
                       ) -> Optional[List[float]]:
        """Check a per-scale weight list: one weight >= 0 (and < ``below``,
        if given) per scale."""
        if weights is None:
            return None
        if mode != 'step':
            raise ValueError(f"{name} apply to mode='step' only")
        if len(weights) != len(self.grids) or any(
                not (w >= 0 and (below is None or w < below))
                for w in weights):
            bound = '>= 0' if below is None else f'in [0, {below:g})'
            raise ValueError(f'{name} must be one weight {bound} per scale '
                             f'({len(self.grids)} scales), got '
                             f'{list(weights)}')
        return [float(w) for w in weights]

    def _stage_loss_names(self, loss_names, mode: str
                          ) -> Optional[List[List[str]]]:
        """Check ``loss_names``: one non-empty list of names per scale."""
        if loss_names is None:
            return None
        if mode != 'step':
            raise ValueError("loss_names apply to mode='step' only")
        if len(loss_names) != len(self.grids) or any(
                isinstance(names, str) or not names
                or not all(isinstance(n, str) for n in names)
                for names in loss_names):
            raise ValueError(
                'loss_names must be one non-empty list of loss names per '
                f'scale ({len(self.grids)} scales), e.g. '
                f"[['loss_psd'], ...], got {loss_names!r}")
        return [list(names) for names in loss_names]

    def _iteration_milestones(self, max_iters: int) -> List[int]:
        if self.milestones is None:
            n = len(self.grids)
            return [round(max_iters * i / n) for i in range(1, n)]
        return [
            round(m * max_iters) if isinstance(m, float) and m < 1 else
            int(m) for m in self.milestones
        ]

    def _stage(self, iteration: int, max_iters: int) -> int:
        """Index of the scale of ``iteration`` (``mode='step'``)."""
        return bisect.bisect_right(
            self._iteration_milestones(max_iters), iteration)

    def grid_at(self, iteration: int, max_iters: int) -> ScaleType:
        """The grid of 0-based training ``iteration`` of ``max_iters``."""
        if self.mode == 'step':
            return self.grids[self._stage(iteration, max_iters)]
        first, last = self.grids[0], self.grids[-1]
        t = min(max(iteration / max(max_iters - 1, 1), 0.0), 1.0)
        return tuple(
            int(round(a + (b - a) * t)) for a, b in zip(first, last))

    @staticmethod
    def _image_heads(runner) -> list:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        return [(name, m) for name, m in model.named_modules()
                if getattr(m, 'level', None) == 'image'
                and hasattr(m, 'scales')]

    @staticmethod
    def _losses_with(heads: list, attribute: str) -> list:
        """The losses of ``heads`` that have ``attribute`` (``'entropy'``:
        an entropy bonus; ``'uniform_weight'``: a uniform pull)."""
        return [
            loss for _, head in heads for loss in getattr(head, 'losses', [])
            if hasattr(loss, attribute)
        ]

    def before_train(self, runner) -> None:
        self.max_iters = runner.max_iters
        heads = self._image_heads(runner)
        if not heads:
            raise ValueError(
                'ProgressiveScaleHook drives the action grid of image-level '
                'RSSHeads, but the model has none (an RSSHead whose reward '
                'is image-level). Fix: remove the hook from custom_hooks, '
                'or use an image-level reward')
        if self.uniform_weights is not None and not self._losses_with(
                heads, 'uniform_weight'):
            raise ValueError(
                'ProgressiveScaleHook(uniform_weights=...) sets the pull '
                'toward the uniform policy of the image heads\' losses, but '
                'none of them has one (uniform_weight). Fix: remove '
                'uniform_weights, or use a loss with a uniform pull '
                '(PSDLoss, PSRRewardLoss, LocalExpectationLoss)')
        if self.entropy_weights is not None:
            losses = self._losses_with(heads, 'entropy')
            if not losses:
                raise ValueError(
                    'ProgressiveScaleHook(entropy_weights=...) sets the '
                    'entropy bonus of the image heads\' losses, but none of '
                    'them has one. Fix: remove entropy_weights, or use '
                    'PSDLoss or PSRRewardLoss')
            if any(loss.entropy.target is not None for loss in losses):
                raise ValueError(
                    'ProgressiveScaleHook(entropy_weights=...) fixes the '
                    'entropy bonus per scale, but a loss adapts it to '
                    'entropy_target. Fix: remove entropy_weights or the '
                    "loss's entropy_target")
        if self.loss_names is not None or self.num_samples is not None:
            self._check_stage_losses(heads)
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        size = getattr(model.data_preprocessor, 'size', None)
        if size is not None:
            for grid in self.grids + self.mixed:
                if grid is not None and (grid[0] > size[0]
                                         or grid[1] > size[1]):
                    raise ValueError(
                        f'ProgressiveScaleHook scale {grid} is finer than '
                        f'the training input {tuple(size)} '
                        '(model.data_preprocessor.size): use scales <= '
                        'the crop size, or None for full resolution')

    def _check_stage_losses(self, heads: list) -> None:
        """Every named loss is a loss of every image head, and each grid's
        K is enough for the losses trained on it."""
        for name, head in heads:
            known = [loss.loss_name for loss in head.losses]
            for stage, grid in enumerate(self.grids):
                names = known if self.loss_names is None else \
                    self.loss_names[stage]
                unknown = [n for n in names if n not in known]
                if unknown:
                    raise ValueError(
                        f'ProgressiveScaleHook(loss_names=...) trains '
                        f'{unknown} on grid {grid}, but the head '
                        f'{name!r} has the losses {known} (their '
                        'loss_name). Fix: name losses of '
                        'model.decode_head.loss, or add the loss there')
                k = head.num_samples if self.num_samples is None else \
                    self.num_samples[stage]
                if head.local_block is not None and k < 2:
                    raise ValueError(
                        f'ProgressiveScaleHook: num_samples={k} on grid '
                        f'{grid}, but the head {name!r} re-samples blocks '
                        'of a first sample (local_block) and needs '
                        'num_samples >= 2')
                for loss in head.losses:
                    needed = getattr(loss, 'min_samples', 1)
                    if loss.loss_name in names and k < needed:
                        raise ValueError(
                            f'ProgressiveScaleHook: on grid {grid} '
                            f'{type(loss).__name__} ({loss.loss_name}) '
                            f'needs num_samples >= {needed}, got {k}. Fix: '
                            'raise that entry of num_samples, or train '
                            'another loss on that grid (loss_names)')

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        grid = self.grid_at(runner.iter, runner.max_iters)
        scales = [grid] + [g for g in self.mixed if g != grid]
        heads = self._image_heads(runner)
        for _, head in heads:
            head.scales = list(scales)
        stage = self._stage(runner.iter, runner.max_iters) \
            if self.mode == 'step' else None
        if self.uniform_weights is not None:
            weight = self.uniform_weights[stage]
            for loss in self._losses_with(heads, 'uniform_weight'):
                loss.uniform_weight = weight
            runner.message_hub.update_scalar('train/uniform_weight', weight)
        if self.entropy_weights is not None:
            weight = self.entropy_weights[stage]
            for loss in self._losses_with(heads, 'entropy'):
                loss.entropy.set_weight(weight)
            runner.message_hub.update_scalar('train/entropy_weight', weight)
        if self.loss_names is not None:
            for _, head in heads:
                head.active_losses = self.loss_names[stage]
        if self.num_samples is not None:
            for _, head in heads:
                head.num_samples = self.num_samples[stage]
            runner.message_hub.update_scalar('train/num_samples',
                                             self.num_samples[stage])
        if self.uniform_mixes is not None:
            for _, head in heads:
                head.uniform_mix = self.uniform_mixes[stage]
            runner.message_hub.update_scalar('train/uniform_mix',
                                             self.uniform_mixes[stage])
        rows = 0 if grid is None else grid[0]  # 0: full resolution
        runner.message_hub.update_scalar('train/psr_scale', rows)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """With ``loss_names``: forget the logged values of the losses
        (and their statistics) that this grid does not run, so the log does
        not repeat their last values for the rest of training, also after
        ``--resume`` (the message hub is restored from the checkpoint).
        Model outputs are the ``<head>.<name>`` keys (``decode.loss_psd``)
        of a head that logged this step."""
        if self.loss_names is None or not outputs:
            return
        heads = {key.split('.', 1)[0] for key in outputs if '.' in key}
        scalars = runner.message_hub.log_scalars
        for key in list(scalars):
            name = key[len('train/'):] if key.startswith('train/') else None
            if name is not None and name not in outputs and '.' in name \
                    and name.split('.', 1)[0] in heads:
                del scalars[key]

    def _schedule(self) -> dict:
        schedule = dict(
            scales=[None if g is None else list(g) for g in self.grids],
            milestones=self.milestones,
            mode=self.mode)
        if self.uniform_weights is not None:
            schedule['uniform_weights'] = list(self.uniform_weights)
        if self.entropy_weights is not None:
            schedule['entropy_weights'] = list(self.entropy_weights)
        if self.loss_names is not None:
            schedule['loss_names'] = [list(n) for n in self.loss_names]
        if self.num_samples is not None:
            schedule['num_samples'] = list(self.num_samples)
        if self.uniform_mixes is not None:
            schedule['uniform_mixes'] = list(self.uniform_mixes)
        if self.mixed:
            schedule['mixed_scales'] = [
                None if g is None else list(g) for g in self.mixed
            ]
        return schedule

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', dict())['psr_schedule'] = \
            self._schedule()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved = checkpoint.get('meta', dict()).get('psr_schedule')
        if saved is not None and saved != self._schedule():
            print_log(
                f'ProgressiveScaleHook: the checkpoint was trained with the '
                f'PSR schedule {saved}, this run uses {self._schedule()}; '
                'continuing with the new one',
                logger='current',
                level=logging.WARNING)
