"""RSSHead: train any mmseg decode head from rewards instead of labels."""
import copy
import logging
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModule
from mmengine.structures import PixelData
from mmseg.models.decode_heads.point_head import calculate_uncertainty
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptMultiConfig, SampleList
from torch import Tensor, nn

from ..pair_sampling import sample_local_variants
from ..policy import (PixelPolicy, ScaleSpec, ScaleType, as_grid,
                      pool_logits, serial_cpu_ops, upsample_actions)
from ..rewards.checks import (DATA_KINDS, RewardChecks, RewardError,
                              check_reward_output, deferred_checks)
from ..rewards.pixel import stack_gt_sem_seg

# The policy entropy and the arg-max accuracy are logged from a regular
# 1-in-(S*S) subgrid of pixels: estimates of their means over the batch
# (~20k pixels at 176x240x8) for 1/S**2 of a full pass (mmseg's topk-based
# accuracy over all pixels costs about as much as the cross-entropy itself).
_STATS_STRIDE = 4


# Heads whose training ``forward`` returns several outputs: the index of
# the segmentation their ``predict`` uses, which becomes the policy. The
# other outputs are auxiliary (deep supervision, SE, boundary) and handled
# by ``RSSHead(extra_outputs=...)``. Looked up along the head's MRO.
MAIN_OUTPUT_INDEX = {
    'DAHead': 0,  # (pam_cam, pam, cam)
    'EncHead': 0,  # (seg, se) with use_se_loss
    'DDRHead': 0,  # (context, spatial)
    'PIDHead': 1,  # (p, i, d): predict uses the integral branch
    'IterativeDecodeHead': -1,  # K-Net: one map per stage, predict: last
}

# Heads RSS cannot wrap: what they output and what to do instead.
_MASK_CLASSIFICATION = (
    'it classifies masks (a set of (class, mask) queries matched to the '
    'reference by Hungarian matching), not pixels, so there is no per-pixel '
    'softmax to sample actions from')
REFUSED_HEADS = {
    'MaskFormerHead': _MASK_CLASSIFICATION,
    'Mask2FormerHead': _MASK_CLASSIFICATION,
    'SideAdapterCLIPHead':
    'it predicts class-agnostic mask proposals scored by CLIP text '
    'embeddings (open vocabulary), not per-pixel logits over num_classes',
}
_REFUSAL_FIX = ('Fix: train this model with its own losses (plain '
                'decode_head), or use a per-pixel decode head (e.g. UPerHead, '
                'FCNHead, SegformerHead) on the same backbone under RSSHead')


def _head_type_name(head: ConfigType) -> str:
    """The registered class name of a head config (scope prefix dropped)."""
    head_type = head.get('type')
    name = head_type if isinstance(head_type, str) else getattr(
        head_type, '__name__', str(head_type))
    return name.split('.')[-1]


def _is_point_head(head: nn.Module) -> bool:
    """PointRend-style heads train on logits at sampled points."""
    return hasattr(head, 'get_points_train')


def _level_of(component: object, kind: str, cfg: ConfigType) -> str:
    """The reward level ('pixel' or 'image') a reward or loss declares."""
    level = getattr(component, 'level', None)
    if level not in ('pixel', 'image'):
        raise TypeError(
            f'{type(component).__name__} (from {cfg!r}) is not an RSS '
            f'{kind}: it must declare level = "pixel" or "image". RSSHead '
            f'takes RSS rewards and losses only (e.g. PixelMatchReward + '
            'PixelRewardLoss, ImageMIoUReward + PSDLoss); a cross-entropy '
            'loss belongs to a plain decode head')
    return level


def _strip_label_losses(head: nn.Module) -> None:
    """Delete every loss module inside a wrapped head.

    ``BaseDecodeHead`` always builds ``loss_decode`` (cross-entropy by
    default); some heads add more (EncHead's ``loss_se_decode``, K-Net's in
    its kernel-generate head). RSSHead never calls them; deleting them makes
    a call by mistake fail instead of training on labels.
    """

    def is_loss(module: nn.Module) -> bool:
        if isinstance(module, nn.ModuleList):
            return len(module) > 0 and all(map(is_loss, module))
        return hasattr(module, 'loss_name')

    for parent in list(head.modules()):
        for name, child in list(parent.named_children()):
            if is_loss(child):
                delattr(parent, name)


@MODELS.register_module()
class RSSHead(BaseModule):
    """Reward in Semantic Segmentation (RSS) head wrapping any decode head.

    `Semantic segmentation with reward <https://arxiv.org/abs/2505.17905>`_.

    At test time it *is* the wrapped head: ``forward`` and ``predict`` are
    the wrapped head's, so the arg-max prediction, evaluators, TTA and
    visualizers are unchanged. In training the wrapped head's logits,
    resized to the reference size as ``BaseDecodeHead.loss_by_feat`` does,
    define a per-pixel policy; ``num_samples`` action maps are drawn from it,
    scored by ``reward`` and turned into gradients by the RSS ``loss``\\ es::

        logits -> PixelPolicy -> actions (K,B,H,W) -> reward(actions, data)
               -> rewards, valid -> loss(policy, actions, rewards, valid)

    With an image-level reward (``reward.level == 'image'``) the policy is
    the logits average-pooled to the current PSR grid (``scales``, driven by
    :class:`~rss_mmseg.engine.hooks.ProgressiveScaleHook`): cell actions are
    upsampled to full-resolution action maps, scored as one reward per image
    and sample (K, B), and the losses (``PSRRewardLoss``, ``PSDLoss``) learn
    from the cell log-probabilities.

    The head does not know which reward it has, nor the losses which head.

    The wrapped head's own ``loss_decode`` (``BaseDecodeHead`` always builds
    one, cross-entropy by default) is removed after building: labels reach
    the gradient only through the reward, and calling the wrapped head's
    ``loss`` by mistake fails instead of training on labels. Its pixel
    ``sampler`` (OHEM), if any, is not used either. Checkpoints of the plain
    head (``decode_head.conv_seg.weight``, ...) load into the wrapped one
    (``decode_head.head.conv_seg.weight``), so a CE model can be fine-tuned
    with rewards via ``load_from``.

    Args:
        head (dict): Config of the wrapped decode head (any
            ``BaseDecodeHead`` whose ``forward`` returns one logits tensor
            with ``out_channels == num_classes``).
        reward (dict): Config of the reward, called as
            ``reward(actions (K,B,H,W), data_samples)`` and returning
            ``(rewards, valid)``, e.g. ``dict(type='PixelMatchReward')``.
        loss (dict | Sequence[dict]): Config(s) of the RSS loss(es), each
            called as ``loss(policy, actions, rewards, valid)`` and returning
            a dict with its ``loss_name`` (summed when repeated) and logged
            statistics. Defaults to ``dict(type='PixelRewardLoss')``.
        num_samples (int): Number K of action maps per image. Defaults to 1.
        temperature (float): Temperature of the sampling policy (losses
            correct for it by importance weighting). Defaults to 1.0.
        uniform_mix (float): Weight of the uniform distribution mixed into
            the sampling policy. Defaults to 0.0.
        stratified (bool): Stratified (systematic) sampling of the K samples
            of a pixel, see
            :func:`~rss_mmseg.models.policy.sample_inverse_cdf`.
            Defaults to False.
        scales (int | tuple[int, int] | list | None): Image-level rewards
            only: the PSR grid(s) the actions are taken on, each an int
            ``s`` (s x s cells), a ``(rows, cols)`` tuple or None (full
            resolution, one cell per pixel); a list gives several scales per
            step (their losses are averaged). A
            :class:`~rss_mmseg.engine.hooks.ProgressiveScaleHook` overrides
            it during training. Defaults to None.
        local_block (float | tuple[int, int], optional): Image-level
            rewards only: draw sample 0 from the policy and samples 1..K-1
            as copies of it re-sampled inside one random block each (a
            fraction of the grid side, or (rows, cols) cells): PSD pairs
            that differ only locally. Defaults to None (independent
            samples).
        on_bad_reward (str): What a reward that raises or returns NaN/inf,
            the wrong shape or dtype, or values outside its ``value_range``
            (or a built-in reward given reference or action values that are
            not class indices) does: ``'raise'`` stops with a
            :class:`RewardError` naming the reward, the problem and the
            first iteration it occurred at; ``'skip'`` counts it and warns.
            Either way the batch gets no gradient (logged as
            ``bad_reward``). Raising and returning the wrong shape or dtype
            are known on the host and act at once; bad values are found on
            the device and acted on at the next check (``check_interval``).
            Defaults to 'raise'.
        check_interval (int): How often, in training steps, the head reads
            the device-side record of bad reward values (one host-device
            sync): after the first step, then every ``check_interval``
            steps, at the last iteration (mmengine's ``max_iters``) and
            when it leaves training mode with steps unchecked (validation,
            early stopping). Between checks a bad batch trains nothing, so
            a bad reward never reaches the weights; 1 checks every step (a
            sync per step, as an eager check would). Defaults to 50
            (mmengine's default logging interval).
        num_classes (int, optional): If given, overrides the wrapped head's
            ``num_classes`` (so ``model.decode_head.num_classes=N`` works as
            for a plain head). Defaults to None.
        output_index (int, optional): For heads whose training forward
            returns several outputs: which one is the segmentation (the
            policy). Defaults to None: known heads (``MAIN_OUTPUT_INDEX``:
            DANet, EncNet, DDRNet, PIDNet, K-Net) use the output their
            ``predict`` uses; other multi-output heads are refused with the
            fix.
        extra_outputs (str): What happens to the other outputs of a
            multi-output head. ``'reward'``: each one that is a
            segmentation map (``num_classes`` channels) is a policy of its
            own, sampled and trained with the same reward and losses
            (weighted by ``extra_weight``, losses logged as
            ``extra<i>.loss_*``); this keeps its parameters trained and, at
            image level, it still sees labels only through the scalar
            reward. ``'drop'``: they get no gradient. Outputs that are not
            class maps (EncNet's SE vector, PIDNet's 1-channel boundary map)
            are label losses in the stock heads and are always dropped.
            Defaults to 'reward'.
        extra_weight (float): Loss weight of each extra output. Defaults to
            1.0 (mmseg's DANet and K-Net weigh them as the main output).
        anchor_weight (float): Weight of a KL anchor to the starting policy
            (reward fine-tuning): ``loss_anchor = anchor_weight *
            mean KL(pi_theta || pi_start)`` over the batch and the pixels of
            the main output, at the resolution the wrapped head outputs,
            with ``pi = softmax(logits)`` (the policy the losses train, the
            direction RL fine-tuning of language models uses). The starting
            policy's logits come from a frozen copy of the starting model
            that :class:`~rss_mmseg.engine.hooks.PolicyAnchorHook` builds
            and ``RSSEncoderDecoder`` runs on the same images; they are set
            as ``anchor_logits`` during ``loss``. The unweighted KL is
            logged as ``anchor_kl``. No labels are involved. Only the main
            output is anchored (extra outputs are not); point heads
            (PointRend) are refused. 0 (default): no anchor.
        init_cfg (dict | list[dict], optional): Initialization config; the
            wrapped head keeps its own. Defaults to None.

    Cascade heads (``CascadeEncoderDecoder``: OCRNet, PointRend) are
    wrapped stage by stage; later stages receive ``prev_output`` as the
    stock heads do. PointRend's ``PointHead`` trains on logits at the
    points it samples (``train_cfg.num_points``): at pixel level each point
    is one action, rewarded against the reference sampled at that point;
    at image level it is refused (point logits are not a segmentation an
    image reward could score).
    """

    def __init__(self,
                 head: ConfigType,
                 reward: ConfigType,
                 loss: Union[ConfigType, Sequence[ConfigType]] = dict(
                     type='PixelRewardLoss'),
                 num_samples: int = 1,
                 temperature: float = 1.0,
                 uniform_mix: float = 0.0,
                 stratified: bool = False,
                 scales: Union[ScaleSpec, Sequence[ScaleSpec]] = None,
                 local_block: Union[float, Tuple[int, int], None] = None,
                 on_bad_reward: str = 'raise',
                 check_interval: int = 50,
                 num_classes: Union[int, None] = None,
                 output_index: Union[int, None] = None,
                 extra_outputs: str = 'reward',
                 extra_weight: float = 1.0,
                 anchor_weight: float = 0.0,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg)
        if isinstance(anchor_weight, bool) or not isinstance(
                anchor_weight, (int, float)) or not math.isfinite(
                    anchor_weight) or anchor_weight < 0:
            raise ValueError('anchor_weight must be a finite number >= 0 '
                             '(the weight of the KL to the starting policy; '
                             f'0: no anchor), got {anchor_weight!r}')
        if num_samples < 1:
            raise ValueError(f'num_samples must be >= 1, got {num_samples}')
        if on_bad_reward not in ('raise', 'skip'):
            raise ValueError("on_bad_reward must be 'raise' or 'skip', got "
                             f'{on_bad_reward!r}')
        if isinstance(check_interval, bool) or not isinstance(
                check_interval, int) or check_interval < 1:
            raise ValueError('check_interval must be an int >= 1 (training '
                             f'steps between checks), got {check_interval!r}')
        if extra_outputs not in ('reward', 'drop'):
            raise ValueError("extra_outputs must be 'reward' or 'drop', got "
                             f'{extra_outputs!r}')
        head = copy.deepcopy(head)
        head_name = _head_type_name(head)
        if head_name in REFUSED_HEADS:
            raise ValueError(
                f'RSSHead cannot wrap {head_name}: '
                f'{REFUSED_HEADS[head_name]}. {_REFUSAL_FIX}')
        if num_classes is not None:
            head['num_classes'] = num_classes
        self.head = MODELS.build(head)
        if self.head.out_channels != self.head.num_classes:
            raise ValueError(
                f'RSSHead samples classes from a softmax over '
                f'out_channels == num_classes logits; the wrapped '
                f'{type(self.head).__name__} has out_channels='
                f'{self.head.out_channels}, num_classes='
                f'{self.head.num_classes} (binary heads: use '
                'out_channels=2)')
        _strip_label_losses(self.head)
        self.output_index = self._main_output_index(output_index)
        self.extra_outputs = extra_outputs
        self.extra_weight = extra_weight
        self.reward = MODELS.build(reward)
        if isinstance(self.reward, nn.Module):
            raise TypeError('a reward must not be an nn.Module: its '
                            'parameters would be trained and saved with the '
                            'policy')
        self.level = _level_of(self.reward, 'reward', reward)
        losses = [loss] if isinstance(loss, dict) else list(loss)
        if not losses:
            raise ValueError('RSSHead needs at least one loss')
        self.losses = nn.ModuleList(MODELS.build(cfg) for cfg in losses)
        for cfg, loss_module in zip(losses, self.losses):
            level = _level_of(loss_module, 'loss', cfg)
            if level != self.level:
                raise ValueError(
                    f'{type(loss_module).__name__} is a {level}-level loss '
                    f'but the reward {type(self.reward).__name__} gives '
                    f'{self.level}-level rewards. Fix: use '
                    + ('PixelRewardLoss' if self.level == 'pixel' else
                       'PSRRewardLoss or PSDLoss') +
                    ' in model.decode_head.loss (or a reward of the other '
                    'level)')
            min_samples = getattr(loss_module, 'min_samples', 1)
            if num_samples < min_samples:
                raise ValueError(
                    f'{type(loss_module).__name__} compares samples and '
                    f'needs num_samples >= {min_samples}, got '
                    f'{num_samples}. Fix: set model.decode_head.num_samples'
                    f'={max(min_samples, 2)} (or more)')
        self.needs_variants = any(
            getattr(m, 'needs_variants', False) for m in self.losses)
        pooled = {
            bool(getattr(m, 'pooled', False))
            for m in self.losses if getattr(m, 'needs_variants', False)
        }
        if len(pooled) > 1:
            raise ValueError(
                'the LocalExpectationLosses of one head must agree on '
                '`pooled` (one set of gains per step)')
        self.pooled_variants = pooled.pop() if pooled else False
        if self.needs_variants and not hasattr(self.reward,
                                               'score_cell_variants'):
            raise ValueError(
                f'{type(self.reward).__name__} cannot score one-cell '
                'variants, which LocalExpectationLoss needs. Fix: use a '
                'confusion reward (ImageMIoUReward, ImageDiceReward, '
                'ImageRecallReward, ImageAccuracyReward, or a '
                'WeightedSumReward of them), or PSDLoss in '
                'model.decode_head.loss')
        if self.needs_variants and local_block is not None:
            raise ValueError(
                'LocalExpectationLoss enumerates every one-cell variant '
                'itself: local_block (sampled local pairs) does not apply. '
                'Fix: remove model.decode_head.local_block')
        if self.level == 'image' and _is_point_head(self.head):
            raise ValueError(
                f'RSSHead cannot train {type(self.head).__name__} from an '
                'image-level reward: it trains on logits at a few thousand '
                'sampled points, not on a segmentation map, so there is no '
                'map for the image reward to score. Fix: train the point '
                'head at pixel level (PixelMatchReward + PixelRewardLoss), '
                'or drop it (model.type=\'EncoderDecoder\' with the first '
                'stage as decode_head)')
        if anchor_weight > 0 and _is_point_head(self.head):
            raise ValueError(
                f'anchor_weight applies to segmentation maps; '
                f'{type(self.head).__name__} trains on logits at sampled '
                'points. Fix: set anchor_weight on the first stage (the '
                'coarse segmentation) and 0 on the point head')
        self.anchor_weight = float(anchor_weight)
        self.scales = scales
        if self.level == 'pixel' and self.scales != [None]:
            raise ValueError('scales (PSR grids) apply to image-level '
                             'rewards; pixel rewards act at full resolution. '
                             'Fix: remove model.decode_head.scales')
        if local_block is not None and self.level == 'pixel':
            raise ValueError('local_block (local PSD pairs) applies to '
                             'image-level rewards only')
        if local_block is not None and num_samples < 2:
            raise ValueError('local_block re-samples blocks of a first '
                             'sample: it needs num_samples >= 2')
        self.local_block = local_block
        self.on_bad_reward = on_bad_reward
        self.num_samples = num_samples
        # loss_names trained in the next step (None: all), set per PSR
        # stage by ProgressiveScaleHook(loss_names=...)
        self._active_losses: Optional[List[str]] = None
        self.temperature = temperature
        self.uniform_mix = uniform_mix
        self.stratified = stratified
        # The batch images, set by RSSEncoderDecoder for rewards that score
        # them (``needs_inputs``); never part of the state dict.
        self.reward_inputs: Union[Tensor, None] = None
        # The starting policy's logits for the batch (B, C, h, w), set by
        # RSSEncoderDecoder when anchor_weight > 0; never in the state dict.
        self.anchor_logits: Union[Tensor, None] = None
        self._bad_reward_batches = 0
        # Bad reward values are found on the device (see _score): recorded
        # here, read every check_interval steps (check_rewards).
        self.check_interval = check_interval
        self._reward_checks = RewardChecks(num_classes=self.num_classes)
        self._steps = 0  # training steps (loss calls) so far
        self._unchecked_steps = 0  # steps since the record was last read
        self._step_bad: Union[Tensor, None] = None  # this step: bad batch
        self._reward_label = 'training iteration'  # what the steps count

    @property
    def scales(self) -> List[ScaleType]:
        """The PSR grids of the next step, each (rows, cols) or None."""
        return self._scales

    @scales.setter
    def scales(self, scales: Union[ScaleSpec, Sequence[ScaleSpec]]) -> None:
        # a list holds several scales (one loss term each per step); an
        # int, a (rows, cols) tuple or None is one scale
        grids = [as_grid(s) for s in scales] if isinstance(
            scales, list) else [as_grid(scales)]
        if not grids:
            raise ValueError('scales must not be an empty list')
        self._scales = grids

    @property
    def active_losses(self) -> Optional[List[str]]:
        """The ``loss_name`` of each loss trained in the next step; None
        (default) trains all of them."""
        return self._active_losses

    @active_losses.setter
    def active_losses(self, names: Optional[Sequence[str]]) -> None:
        if names is None:
            self._active_losses = None
            return
        known = [m.loss_name for m in self.losses]
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise ValueError(
                f'active_losses must name one or more of this head\'s '
                f'losses {known} (their loss_name), got {list(names)}')
        self._active_losses = list(names)

    def _losses_now(self) -> List[nn.Module]:
        """The losses trained in this step (see :attr:`active_losses`)."""
        if self._active_losses is None:
            return list(self.losses)
        return [m for m in self.losses if m.loss_name in self._active_losses]

    def _main_output_index(self, output_index: Union[int, None]
                           ) -> Union[int, None]:
        """``output_index`` or the known index of the head's class."""
        if output_index is not None:
            return output_index
        for cls in type(self.head).__mro__:
            if cls.__name__ in MAIN_OUTPUT_INDEX:
                return MAIN_OUTPUT_INDEX[cls.__name__]
        return None

    def _split_outputs(self, outputs: Union[Tensor, Sequence[Tensor]]
                       ) -> Tuple[Tensor, List[Tensor]]:
        """The policy logits and the extra segmentation maps to train.

        Raises a ``TypeError`` naming the head when it returns several
        outputs and which one is the segmentation is unknown.
        """
        if isinstance(outputs, Tensor):
            return outputs, []
        head_name = type(self.head).__name__
        if self.output_index is None:
            raise TypeError(
                f'{head_name}.forward returned {len(outputs)} outputs in '
                'training and RSSHead does not know which one is the '
                'segmentation its predict uses. Fix: set model.decode_head.'
                'output_index to that index (the others are trained as '
                'extra policies or dropped: extra_outputs)')
        outputs = list(outputs)
        main = outputs.pop(self.output_index % len(outputs))
        if not (isinstance(main, Tensor) and main.dim() == 4
                and main.shape[1] == self.num_classes):
            raise TypeError(
                f'output {self.output_index} of {head_name}.forward is not '
                f'a (B, num_classes={self.num_classes}, h, w) segmentation '
                'map. Fix: set model.decode_head.output_index to the '
                'output that is')
        if self.extra_outputs == 'drop':
            return main, []
        extras = [
            out for out in outputs if isinstance(out, Tensor)
            and out.dim() == 4 and out.shape[1] == self.num_classes
        ]
        return main, extras

    # What EncoderDecoder and the tools read from a decode head.
    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def out_channels(self) -> int:
        return self.head.out_channels

    @property
    def align_corners(self) -> bool:
        return self.head.align_corners

    @property
    def threshold(self):
        # IterativeDecodeHead (K-Net) skips BaseDecodeHead.__init__
        return getattr(self.head, 'threshold', None)

    @property
    def ignore_index(self) -> int:
        return self.head.ignore_index

    def forward(self, inputs: Union[List[Tensor], Tuple[Tensor]],
                *prev_output: Tensor) -> Union[Tensor, Sequence[Tensor]]:
        """The wrapped head's forward (cascade stages: with the previous
        stage's output)."""
        return self.head(inputs, *prev_output)

    def predict(self, inputs: Tuple[Tensor], *args) -> Tensor:
        """The wrapped head's prediction, unchanged: ``(inputs,
        batch_img_metas, test_cfg)`` or, for cascade stages, ``(inputs,
        prev_output, batch_img_metas, test_cfg)``."""
        return self.head.predict(inputs, *args)

    def loss(self, inputs: Tuple[Tensor], *args) -> Dict[str, Tensor]:
        """Act, get rewards, learn.

        Args:
            inputs (tuple[Tensor]): Multi-level image features.
            *args: ``(batch_data_samples, train_cfg)`` as for any decode
                head, or ``(prev_output, batch_data_samples, train_cfg)``
                for a later stage of a ``CascadeEncoderDecoder``.

        Returns:
            dict[str, Tensor]: ``loss_*`` items and logged statistics
            (``reward``, ``adv_std``, ``entropy``, and with references
            ``acc_sample``, ``acc_seg``).
        """
        *prev_output, batch_data_samples, train_cfg = args
        if _is_point_head(self.head):
            self._begin_step()
            point_logits, point_samples = self._point_logits(
                inputs, prev_output[0], batch_data_samples, train_cfg)
            losses = self._pixel_step(point_logits, point_samples)
            self._end_step()
            return losses
        return self.loss_by_feat(
            self.forward(inputs, *prev_output), batch_data_samples)

    def loss_by_feat(self, seg_logits: Union[Tensor, Sequence[Tensor]],
                     batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Compute the RSS losses from the wrapped head's output(s).

        The policy is the main segmentation output; with ``extra_outputs=
        'reward'`` every other segmentation map is trained the same way
        (only its ``loss_*`` items are kept, prefixed ``extra<i>.``). With
        ``anchor_weight > 0`` the main output also gets ``loss_anchor``
        (and ``anchor_kl`` is logged).
        """
        if self.anchor_weight > 0 and self.anchor_logits is None:
            raise RuntimeError(
                f'RSSHead(anchor_weight={self.anchor_weight}) anchors the '
                'policy to the starting model, but no starting-policy '
                'logits (anchor_logits) were given for this batch. Fix: '
                "add dict(type='PolicyAnchorHook') to custom_hooks and set "
                "model.type='RSSEncoderDecoder' (or set model.decode_head."
                'anchor_weight=0)')
        self._begin_step()
        main, extras = self._split_outputs(seg_logits)
        losses = self._policy_step(main, batch_data_samples)
        if self.anchor_weight > 0:
            losses.update(self._anchor(main))
        for i, extra in enumerate(extras, 1):
            for name, value in self._policy_step(
                    extra, batch_data_samples).items():
                if 'loss' in name:
                    losses[f'extra{i}.{name}'] = value * self.extra_weight
        self._end_step()
        return losses

    def _anchor(self, logits: Tensor) -> Dict[str, Tensor]:
        """``loss_anchor`` and the logged ``anchor_kl``: the mean over the
        batch and the pixels of ``KL(softmax(logits) || softmax(anchor))``.

        Computed at the resolution of the head's output (the reference is
        resized to it if it differs), in float32 whatever the logits' dtype
        (no op here is one autocast lowers), without reading a value on the
        host. The gradient w.r.t. a pixel's logits is ``p * (log p - log q -
        KL)`` / pixels: zero where the policy equals the reference.
        """
        ref = self.anchor_logits.detach()
        if ref.dim() != 4 or ref.shape[:2] != logits.shape[:2]:
            raise ValueError(
                'anchor_logits must be the starting policy\'s (B, C, h, w) '
                f'logits for this batch, got {tuple(ref.shape)} for logits '
                f'{tuple(logits.shape)}')
        if ref.shape[-2:] != logits.shape[-2:]:
            ref = resize(
                input=ref,
                size=logits.shape[-2:],
                mode='bilinear',
                align_corners=self.align_corners)
        log_p = torch.log_softmax(logits.float(), dim=1)
        log_q = torch.log_softmax(ref.float(), dim=1)
        kl = (log_p.exp() * (log_p - log_q)).sum(1).mean()
        return dict(loss_anchor=kl * self.anchor_weight, anchor_kl=kl.detach())

    def train(self, mode: bool = True) -> 'RSSHead':
        """Set the training mode; leaving training first reads the record
        of bad rewards if steps are unchecked (:meth:`check_rewards`), so
        a run that stops early (validation, early stopping) does not end
        with unreported bad batches."""
        if not mode and self.training and getattr(self, '_unchecked_steps',
                                                  0):
            self.check_rewards()
        return super().train(mode)

    def _begin_step(self) -> None:
        self._step_bad = None

    def _end_step(self) -> None:
        """Count the step; read the record of bad rewards when it is due:
        after the first step, every ``check_interval`` steps and at the
        last training iteration."""
        self._steps += 1
        self._unchecked_steps += 1
        hub = MessageHub.get_current_instance()
        iteration, max_iters = hub.get_info('iter'), hub.get_info('max_iters')
        last = (isinstance(iteration, int) and isinstance(max_iters, int)
                and iteration + 1 >= max_iters)
        if self._steps == 1 or last or \
                self._unchecked_steps >= self.check_interval:
            self.check_rewards()

    def _step_number(self) -> Tuple[int, str]:
        """The current step for messages: mmengine's iteration (0-based)
        when a runner set it, else the number of loss calls so far."""
        iteration = MessageHub.get_current_instance().get_info('iter')
        if isinstance(iteration, int):
            return iteration, 'training iteration'
        return self._steps, 'loss call'

    def check_rewards(self) -> None:
        """Act on the bad reward values found since the last check.

        Reads the head's device-side record (one host-device sync; under
        distributed training a collective, so all ranks call it at the same
        steps and all see the same problems). With
        ``on_bad_reward='raise'`` raises a :class:`RewardError` naming the
        reward, each problem and the first iteration it occurred at; with
        ``'skip'`` counts the bad batches and warns. Called by the head
        itself (see ``check_interval``); callable any time.
        """
        steps, self._unchecked_steps = self._unchecked_steps, 0
        report = self._reward_checks.collect()
        if report is None:
            return
        label = self._reward_label
        problems = '; and '.join(
            (f'{self.reward!r}: ' if p.kind in DATA_KINDS else '') +
            f'{p.text}, first at {label} {p.first + 1}' +
            (f' ({p.calls} batches)' if p.calls > 1 else '')
            for p in report.problems)
        found = (f' [{report.bad_calls} bad batch(es) in the last {steps} '
                 'step(s), all given no gradient]')
        if self.on_bad_reward == 'raise':
            raise RewardError(
                problems + found + ". Fix the reward, or set model."
                "decode_head.on_bad_reward='skip' to skip such batches")
        self._bad_reward_batches += report.bad_calls
        print_log(
            f'skipped {report.bad_calls} batch(es) '
            f'({self._bad_reward_batches} so far): {problems}',
            logger='current',
            level=logging.WARNING)

    def _policy_step(self, seg_logits: Tensor,
                     batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """One RSS step on one (B, C, h, w) logits map."""
        seg_logits = resize(
            input=seg_logits,
            size=self._target_size(batch_data_samples),
            mode='bilinear',
            align_corners=self.align_corners)
        if self.level == 'pixel':
            return self._pixel_step(seg_logits, batch_data_samples)
        return self._image_step(seg_logits, batch_data_samples)

    def _point_logits(self, inputs: Tuple[Tensor], prev_output: Tensor,
                      batch_data_samples: SampleList,
                      train_cfg: ConfigType) -> Tuple[Tensor, SampleList]:
        """PointRend: logits at the points ``PointHead.loss`` samples, as a
        (B, C, 1, N) map, and the batch with the reference sampled there.

        The points are chosen exactly as the stock head chooses them (by
        the previous stage's uncertainty, ``train_cfg``); the reference is
        sampled at them with ``mode='nearest'`` (as ``PointHead`` does), so
        a pixel reward scores each point's action against its class.
        """
        from mmcv.ops import point_sample
        head = self.head
        x = head._transform_inputs(inputs)
        with torch.no_grad():
            points = head.get_points_train(
                prev_output, calculate_uncertainty, cfg=train_cfg)
        point_logits = head.forward(
            head._get_fine_grained_point_feats(x, points),
            head._get_coarse_point_feats(prev_output, points))
        point_samples = []
        for sample, sample_points in zip(batch_data_samples, points):
            label = point_sample(
                sample.gt_sem_seg.data[None].float(),
                sample_points[None],
                mode='nearest',
                align_corners=self.align_corners)  # (1, 1, N)
            at_points = sample.clone()
            at_points.gt_sem_seg = PixelData(data=label[0].long())
            point_samples.append(at_points)
        return point_logits.unsqueeze(2), point_samples

    def _pixel_step(self, seg_logits: Tensor,
                    batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """One action per pixel, a reward per pixel."""
        policy = PixelPolicy(seg_logits, self.temperature, self.uniform_mix)
        # The few full-size (B, C, H, W) ops run on all threads here ...
        policy.sampling_probs  # noqa: B018 (computes and caches)
        # ... the many small ops of acting and learning on one CPU thread.
        with serial_cpu_ops(seg_logits):
            actions, _ = policy.sample(self.num_samples, self.stratified)
            rewards, valid = self._score(actions, batch_data_samples)
            losses = self._learn(policy, actions, rewards, valid)
            losses.update(
                self._statistics(seg_logits, actions, rewards, valid,
                                 batch_data_samples))
        return losses

    def _image_step(self, seg_logits: Tensor,
                    batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Actions on the PSR grid(s), one reward per image and sample.

        For each scale the logits are average-pooled to its grid, K cell
        action grids are drawn, upsampled (nearest) to full resolution and
        scored there; the losses learn from the cell log-probabilities.
        With several scales the losses of each are averaged.
        """
        size = tuple(seg_logits.shape[-2:])
        losses: Dict[str, Tensor] = dict()
        num_scales = len(self.scales)
        needs_variants = any(
            getattr(m, 'needs_variants', False) for m in self._losses_now())
        for grid in self.scales:
            cell_logits = pool_logits(seg_logits, grid)
            policy = PixelPolicy(cell_logits, self.temperature,
                                 self.uniform_mix)
            policy.sampling_probs  # noqa: B018
            with serial_cpu_ops(seg_logits):
                if self.local_block is None:
                    cell_actions, _ = policy.sample(self.num_samples,
                                                    self.stratified)
                else:
                    cell_actions = sample_local_variants(
                        policy.sampling_probs, self.num_samples,
                        self.local_block)
                gains = None
                if needs_variants:
                    # rewards and the exact gains of every one-cell variant
                    # (at full resolution every pixel is a cell)
                    rewards, valid, gains = self._score(
                        cell_actions, batch_data_samples, variants=True)
                    actions = upsample_actions(cell_actions[:1], size)
                elif grid is not None and hasattr(self.reward,
                                                  'score_cells'):
                    # exact rewards of the upsampled maps from per-cell
                    # reference counts; only sample 0 is upsampled (stats)
                    rewards, valid = self._score(
                        cell_actions, batch_data_samples, cells=True)
                    actions = upsample_actions(cell_actions[:1], size)
                else:
                    actions = upsample_actions(cell_actions, size)
                    rewards, valid = self._score(actions, batch_data_samples)
                step = self._learn(policy, cell_actions, rewards, valid,
                                   gains)
            for name, value in step.items():
                value = value / num_scales
                losses[name] = losses[name] + value if name in losses \
                    else value
        with serial_cpu_ops(seg_logits):
            losses.update(
                self._statistics(seg_logits, actions, rewards, valid,
                                 batch_data_samples))
        rows, cols = self.scales[-1] or size
        losses['psr_cells'] = seg_logits.new_full((), float(rows * cols))
        return losses

    def _learn(self,
               policy: PixelPolicy,
               actions: Tensor,
               rewards: Tensor,
               valid: Tensor,
               gains: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Run every active loss; repeated ``loss_*`` names are summed.
        Losses that ``needs_variants`` also get the one-cell variant
        ``gains``."""
        losses: Dict[str, Tensor] = dict()
        for loss_module in self._losses_now():
            extra = dict(gains=gains) if getattr(
                loss_module, 'needs_variants', False) else dict()
            for name, value in loss_module(policy, actions, rewards, valid,
                                           **extra).items():
                if name in losses and 'loss' in name:
                    losses[name] = losses[name] + value
                else:
                    losses[name] = value
        return losses

    def _score(self,
               actions: Tensor,
               batch_data_samples: SampleList,
               cells: bool = False,
               variants: bool = False) -> Tuple[Tensor, ...]:
        """Call the reward and check what it returns.

        With ``cells=True`` the actions are PSR cell grids (K, B, rows,
        cols), scored by the reward's ``score_cells`` as their upsampled
        maps (built-in confusion rewards, see
        :func:`~rss_mmseg.models.rewards.per_image_cell_confusion`).

        A reward that raises, or returns the wrong shape or dtype, stops
        the run with a :class:`RewardError` naming the reward and the
        iteration; with ``on_bad_reward='skip'`` the batch is instead marked
        invalid (no gradient, collectives still run on every rank) and
        counted in the log (``bad_reward``).

        Values are checked without a host-device sync: non-finite rewards,
        rewards outside the declared ``value_range`` and (built-in rewards)
        reference or action values that are not class indices are noted in
        the head's device-side record, and the batch is made inert on the
        device (rewards 0, nothing valid: no gradient, and no NaN reaches
        the losses). :meth:`check_rewards` reads the record every
        ``check_interval`` steps and raises or warns then.
        """
        if getattr(self.reward, 'needs_inputs',
                   False) and self.reward_inputs is None:
            raise ValueError(
                f'{self.reward!r} scores the images too (needs_inputs), but '
                'the segmentor did not hand them over. Fix: set '
                "model.type='RSSEncoderDecoder' (or pass_inputs=False in the "
                'reward config)')
        checks = self._reward_checks
        step, self._reward_label = self._step_number()
        checks.begin_call(step, actions.device)
        gains = None
        try:
            with deferred_checks(checks):
                if variants:
                    *out, gains = self.reward.score_cell_variants(
                        actions, batch_data_samples,
                        pooled=self.pooled_variants)
                    out = tuple(out)
                elif cells:
                    out = self.reward.score_cells(actions,
                                                  batch_data_samples)
                elif getattr(self.reward, 'needs_inputs', False):
                    out = self.reward(
                        actions, batch_data_samples,
                        inputs=self.reward_inputs)
                else:
                    out = self.reward(actions, batch_data_samples)
            rewards, valid = check_reward_output(self.reward, out, actions,
                                                 self.level, checks)
        except RewardError as error:
            return self._bad_reward(error, actions, variants)
        except Exception as error:  # the user's scorer failed
            return self._bad_reward(
                RewardError(f'{self.reward!r} raised '
                            f'{type(error).__name__}: {error}'), actions,
                variants, error)
        finally:
            bad = checks.end_call()
        if bad is not None:
            # a bad batch trains nothing: all of it invalid, rewards 0 (no
            # NaN reaches the losses), decided on the device
            rewards = rewards.masked_fill(bad, 0.0)
            valid = valid & ~bad
            self._step_bad = bad if self._step_bad is None \
                else self._step_bad | bad
            if gains is not None:
                gains = gains.masked_fill(bad, 0.0)
        if variants:
            return rewards, valid, gains
        return rewards, valid

    def _bad_reward(self,
                    error: 'RewardError',
                    actions: Tensor,
                    variants: bool = False,
                    cause: Union[BaseException, None] = None
                    ) -> Tuple[Tensor, ...]:
        iteration = MessageHub.get_current_instance().get_info('iter')
        where = ('' if iteration is None else
                 f' at training iteration {iteration + 1}')
        message = f'{error}{where}'
        if self.on_bad_reward == 'raise':
            raise RewardError(
                message + ". Fix the reward, or set model.decode_head."
                "on_bad_reward='skip' to skip such batches") from cause
        self._bad_reward_batches += 1
        self._step_bad = actions.new_ones((), dtype=torch.bool)
        print_log(
            f'skipped a batch ({self._bad_reward_batches} so far): '
            f'{message}',
            logger='current',
            level=logging.WARNING)
        K, B = actions.shape[:2]
        if self.level == 'pixel':
            return (actions.new_zeros(actions.shape, dtype=torch.float32),
                    actions.new_zeros(actions.shape[1:], dtype=torch.bool))
        out = (actions.new_zeros((K, B), dtype=torch.float32),
               actions.new_zeros((B, ), dtype=torch.bool))
        if variants:  # cell actions (K, B, h, w): no gains either
            out += (actions.new_zeros(
                (K, B, self.num_classes) + tuple(actions.shape[2:]),
                dtype=torch.float32), )
        return out

    @torch.no_grad()
    def _statistics(self, seg_logits: Tensor, actions: Tensor,
                    rewards: Tensor, valid: Tensor,
                    batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Logged values (no ``loss`` in their names: never summed).

        ``actions`` are full-resolution action maps (K, B, H, W) (in
        image mode possibly only the first of the K samples); the
        entropy and the arg-max accuracy are estimated on a regular subgrid
        of pixels of the full-resolution policy.
        """
        stats = dict()
        if rewards.dim() == 4:  # pixel rewards, valid (B, H, W)
            num = valid.sum() * actions.shape[0]
            stats['reward'] = rewards.float().sum() / num.clamp(min=1)
        else:  # one reward per sample and image, valid (B,)
            num = valid.sum() * rewards.shape[0]
            stats['reward'] = (rewards.float() * valid).sum() / num.clamp(
                min=1)
        stats['bad_reward'] = seg_logits.new_zeros(()) \
            if self._step_bad is None else self._step_bad.to(
                seg_logits.dtype)
        st = _STATS_STRIDE
        probs = torch.softmax(seg_logits.detach()[..., ::st, ::st].float(), 1)
        entropy = -(probs * probs.clamp(min=1e-30).log()).sum(1)
        stats['entropy'] = entropy.mean()
        if all('gt_sem_seg' in s for s in batch_data_samples):
            gt = stack_gt_sem_seg(batch_data_samples).to(actions.device)
            gt_valid = gt != self.ignore_index
            hits = ((actions == gt) & gt_valid).sum()
            stats['acc_sample'] = 100.0 * hits / (
                gt_valid.sum() * actions.shape[0]).clamp(min=1)
            gt = gt[..., ::st, ::st]
            gt_valid = gt != self.ignore_index
            hits = ((probs.argmax(1) == gt) & gt_valid).sum()
            stats['acc_seg'] = 100.0 * hits / gt_valid.sum().clamp(min=1)
        return stats

    @staticmethod
    def _target_size(batch_data_samples: SampleList) -> Tuple[int, int]:
        """The reference map size (or the padded input size without one)."""
        sample = batch_data_samples[0]
        if 'gt_sem_seg' in sample:
            return tuple(sample.gt_sem_seg.shape)
        meta = sample.metainfo
        if meta.get('pad_shape') is not None:
            return tuple(meta['pad_shape'][:2])
        # label-free data: mmseg's stack_batch leaves pad_shape None and
        # records the padding (left, right, top, bottom) it added
        h, w = meta['img_shape'][:2]
        left, right, top, bottom = meta.get('padding_size') or (0, 0, 0, 0)
        return (h + top + bottom, w + left + right)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Accept checkpoints of the plain wrapped head (``prefix + key``)
        by mapping them to ``prefix + 'head.' + key``."""
        head_prefix = prefix + 'head.'
        own = [k for k in state_dict if k.startswith(prefix)]
        if own and not any(k.startswith(head_prefix) for k in own):
            for key in own:
                state_dict[head_prefix + key[len(prefix):]] = state_dict.pop(
                    key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
