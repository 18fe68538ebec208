"""RSSHead: train any mmseg decode head from rewards instead of labels."""
import copy
import logging
from typing import Dict, List, Sequence, Tuple, Union

import torch
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModule
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptMultiConfig, SampleList
from torch import Tensor, nn

from ..pair_sampling import sample_local_variants
from ..policy import (PixelPolicy, ScaleSpec, ScaleType, as_grid,
                      pool_logits, serial_cpu_ops, upsample_actions)
from ..rewards.checks import RewardError, check_reward_output
from ..rewards.pixel import stack_gt_sem_seg

# The policy entropy and the arg-max accuracy are logged from a regular
# 1-in-(S*S) subgrid of pixels: estimates of their means over the batch
# (~20k pixels at 176x240x8) for 1/S**2 of a full pass (mmseg's topk-based
# accuracy over all pixels costs about as much as the cross-entropy itself).
_STATS_STRIDE = 4


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
            does: ``'raise'`` stops with a :class:`RewardError` naming the
            reward and the iteration; ``'skip'`` gives the batch no
            gradient and counts it (logged as ``bad_reward``). Defaults to
            'raise'.
        num_classes (int, optional): If given, overrides the wrapped head's
            ``num_classes`` (so ``model.decode_head.num_classes=N`` works as
            for a plain head). Defaults to None.
        init_cfg (dict | list[dict], optional): Initialization config; the
            wrapped head keeps its own. Defaults to None.
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
                 num_classes: Union[int, None] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg)
        if num_samples < 1:
            raise ValueError(f'num_samples must be >= 1, got {num_samples}')
        if on_bad_reward not in ('raise', 'skip'):
            raise ValueError("on_bad_reward must be 'raise' or 'skip', got "
                             f'{on_bad_reward!r}')
        head = copy.deepcopy(head)
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
        if 'loss_decode' in self.head._modules:
            del self.head.loss_decode
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
        self.temperature = temperature
        self.uniform_mix = uniform_mix
        self.stratified = stratified
        # The batch images, set by RSSEncoderDecoder for rewards that score
        # them (``needs_inputs``); never part of the state dict.
        self.reward_inputs: Union[Tensor, None] = None
        self._bad_reward_batches = 0
        self._last_bad_reward = 0.0  # 1.0 when this step's batch was skipped

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
        return self.head.threshold

    @property
    def ignore_index(self) -> int:
        return self.head.ignore_index

    def forward(self, inputs: Union[List[Tensor], Tuple[Tensor]]) -> Tensor:
        """The wrapped head's forward: logits (B, C, h, w)."""
        return self.head(inputs)

    def predict(self, inputs: Tuple[Tensor], batch_img_metas: List[dict],
                test_cfg: ConfigType) -> Tensor:
        """The wrapped head's prediction, unchanged."""
        return self.head.predict(inputs, batch_img_metas, test_cfg)

    def loss(self, inputs: Tuple[Tensor], batch_data_samples: SampleList,
             train_cfg: ConfigType) -> Dict[str, Tensor]:
        """Act, get rewards, learn.

        Args:
            inputs (tuple[Tensor]): Multi-level image features.
            batch_data_samples (list[:obj:`SegDataSample`]): The batch.
            train_cfg (dict): The training config (unused).

        Returns:
            dict[str, Tensor]: ``loss_*`` items and logged statistics
            (``reward``, ``adv_std``, ``entropy``, and with references
            ``acc_sample``, ``acc_seg``).
        """
        seg_logits = self.forward(inputs)
        return self.loss_by_feat(seg_logits, batch_data_samples)

    def loss_by_feat(self, seg_logits: Tensor,
                     batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Compute the RSS losses from the wrapped head's logits."""
        seg_logits = resize(
            input=seg_logits,
            size=self._target_size(batch_data_samples),
            mode='bilinear',
            align_corners=self.align_corners)
        if self.level == 'pixel':
            return self._pixel_step(seg_logits, batch_data_samples)
        return self._image_step(seg_logits, batch_data_samples)

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
                if grid is not None and hasattr(self.reward, 'score_cells'):
                    # exact rewards of the upsampled maps from per-cell
                    # reference counts; only sample 0 is upsampled (stats)
                    rewards, valid = self._score(
                        cell_actions, batch_data_samples, cells=True)
                    actions = upsample_actions(cell_actions[:1], size)
                else:
                    actions = upsample_actions(cell_actions, size)
                    rewards, valid = self._score(actions, batch_data_samples)
                step = self._learn(policy, cell_actions, rewards, valid)
            for name, value in step.items():
                value = value / num_scales
                losses[name] = losses[name] + value if name in losses \
                    else value
        with serial_cpu_ops(seg_logits):
            losses.update(
                self._statistics(seg_logits, actions, rewards, valid,
                                 batch_data_samples))
        rows, cols = self.scales[-1] or size
        losses['psr_cells'] = seg_logits.new_tensor(float(rows * cols))
        return losses

    def _learn(self, policy: PixelPolicy, actions: Tensor, rewards: Tensor,
               valid: Tensor) -> Dict[str, Tensor]:
        """Run every loss; repeated ``loss_*`` names are summed."""
        losses: Dict[str, Tensor] = dict()
        for loss_module in self.losses:
            for name, value in loss_module(policy, actions, rewards,
                                           valid).items():
                if name in losses and 'loss' in name:
                    losses[name] = losses[name] + value
                else:
                    losses[name] = value
        return losses

    def _score(self,
               actions: Tensor,
               batch_data_samples: SampleList,
               cells: bool = False) -> Tuple[Tensor, Tensor]:
        """Call the reward and check what it returns.

        With ``cells=True`` the actions are PSR cell grids (K, B, rows,
        cols), scored by the reward's ``score_cells`` as their upsampled
        maps (built-in confusion rewards, see
        :func:`~rss_mmseg.models.rewards.per_image_cell_confusion`).

        A reward that raises, or returns the wrong shape or dtype,
        non-finite values or values outside its declared ``value_range``
        stops the run with a :class:`RewardError` naming the reward and the
        iteration; with ``on_bad_reward='skip'`` the batch is instead marked
        invalid (no gradient, collectives still run on every rank) and
        counted in the log (``bad_reward``).
        """
        if getattr(self.reward, 'needs_inputs',
                   False) and self.reward_inputs is None:
            raise ValueError(
                f'{self.reward!r} scores the images too (needs_inputs), but '
                'the segmentor did not hand them over. Fix: set '
                "model.type='RSSEncoderDecoder' (or pass_inputs=False in the "
                'reward config)')
        try:
            if cells:
                out = self.reward.score_cells(actions, batch_data_samples)
            elif getattr(self.reward, 'needs_inputs', False):
                out = self.reward(actions, batch_data_samples,
                                  inputs=self.reward_inputs)
            else:
                out = self.reward(actions, batch_data_samples)
            rewards, valid = check_reward_output(self.reward, out, actions,
                                                 self.level)
        except RewardError as error:
            return self._bad_reward(error, actions)
        except Exception as error:  # the user's scorer failed
            return self._bad_reward(
                RewardError(f'{self.reward!r} raised '
                            f'{type(error).__name__}: {error}'), actions,
                error)
        self._last_bad_reward = 0.0
        return rewards, valid

    def _bad_reward(self,
                    error: 'RewardError',
                    actions: Tensor,
                    cause: Union[BaseException, None] = None
                    ) -> Tuple[Tensor, Tensor]:
        iteration = MessageHub.get_current_instance().get_info('iter')
        where = ('' if iteration is None else
                 f' at training iteration {iteration + 1}')
        message = f'{error}{where}'
        if self.on_bad_reward == 'raise':
            raise RewardError(
                message + ". Fix the reward, or set model.decode_head."
                "on_bad_reward='skip' to skip such batches") from cause
        self._bad_reward_batches += 1
        self._last_bad_reward = 1.0
        print_log(
            f'skipped a batch ({self._bad_reward_batches} so far): '
            f'{message}',
            logger='current',
            level=logging.WARNING)
        K, B = actions.shape[:2]
        if self.level == 'pixel':
            return (actions.new_zeros(actions.shape, dtype=torch.float32),
                    actions.new_zeros(actions.shape[1:], dtype=torch.bool))
        return (actions.new_zeros((K, B), dtype=torch.float32),
                actions.new_zeros((B, ), dtype=torch.bool))

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
        stats['bad_reward'] = seg_logits.new_tensor(
            self._last_bad_reward)
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
