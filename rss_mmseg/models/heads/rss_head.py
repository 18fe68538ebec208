"""RSSHead: train any mmseg decode head from rewards instead of labels."""
import copy
from typing import Dict, List, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptMultiConfig, SampleList
from torch import Tensor, nn

from ..policy import PixelPolicy, serial_cpu_ops
from ..rewards.pixel import stack_gt_sem_seg

# The policy entropy and the arg-max accuracy are logged from a regular
# 1-in-(S*S) subgrid of pixels: estimates of their means over the batch
# (~20k pixels at 176x240x8) for 1/S**2 of a full pass (mmseg's topk-based
# accuracy over all pixels costs about as much as the cross-entropy itself).
_STATS_STRIDE = 4


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
                 num_classes: Union[int, None] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg)
        if num_samples < 1:
            raise ValueError(f'num_samples must be >= 1, got {num_samples}')
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
        losses = [loss] if isinstance(loss, dict) else list(loss)
        if not losses:
            raise ValueError('RSSHead needs at least one loss')
        self.losses = nn.ModuleList(MODELS.build(cfg) for cfg in losses)
        self.num_samples = num_samples
        self.temperature = temperature
        self.uniform_mix = uniform_mix
        self.stratified = stratified

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
        policy = PixelPolicy(seg_logits, self.temperature, self.uniform_mix)
        # The few full-size (B, C, H, W) ops run on all threads here ...
        policy.sampling_probs  # noqa: B018 (computes and caches)
        losses: Dict[str, Tensor] = dict()
        # ... the many small ops of acting and learning on one CPU thread.
        with serial_cpu_ops(seg_logits):
            actions, _ = policy.sample(self.num_samples, self.stratified)
            rewards, valid = self.reward(actions, batch_data_samples)
            for loss_module in self.losses:
                for name, value in loss_module(policy, actions, rewards,
                                               valid).items():
                    if name in losses and 'loss' in name:
                        losses[name] = losses[name] + value
                    else:
                        losses[name] = value
            losses.update(
                self._statistics(policy, actions, rewards, valid,
                                 batch_data_samples))
        return losses

    @torch.no_grad()
    def _statistics(self, policy: PixelPolicy, actions: Tensor,
                    rewards: Tensor, valid: Tensor,
                    batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Logged values (no ``loss`` in their names: never summed)."""
        stats = dict()
        if rewards.shape == actions.shape:  # pixel rewards
            num = valid.sum() * actions.shape[0]
            stats['reward'] = rewards.float().sum() / num.clamp(min=1)
        else:  # one reward per sample and image
            stats['reward'] = rewards.float().mean()
        # entropy and arg-max accuracy on a regular subgrid of pixels
        st = _STATS_STRIDE
        probs = policy.probs[..., ::st, ::st]
        sub_valid = valid[..., ::st, ::st]
        num_sub = sub_valid.sum().clamp(min=1)
        entropy = -(probs * probs.clamp(min=1e-30).log()).sum(1)
        stats['entropy'] = (entropy * sub_valid).sum() / num_sub
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
        return tuple(meta.get('pad_shape', meta['img_shape'])[:2])

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
