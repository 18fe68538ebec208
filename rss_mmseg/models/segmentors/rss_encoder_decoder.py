"""EncoderDecoder that lets rewards see the batch images and anchors the
policy to a frozen starting model."""
from typing import Dict, List, Optional, Tuple

import torch
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import SampleList
from torch import Tensor, nn

from ...utils.anchor import anchored_heads


class _Unregistered:
    """Holds a module outside the module tree.

    Not a submodule: not in ``state_dict``, ``parameters()`` or the
    optimizer, not moved by ``.to()``, not wrapped by DDP. ``deepcopy`` of
    the holder returns the holder itself, so copies of the segmentor (EMA,
    the reference itself) share the reference instead of copying it.
    """

    def __init__(self, module: Optional[nn.Module]) -> None:
        self.module = module

    def __deepcopy__(self, memo) -> '_Unregistered':
        return self


@MODELS.register_module()
class RSSEncoderDecoder(EncoderDecoder):
    """mmseg's ``EncoderDecoder``, handing the batch images to RSS rewards
    and the starting policy's logits to anchored RSS heads.

    A decode head only receives features, but a reward that scores the
    action map *with* its image (a learned reward model, a human rating
    service behind :class:`~rss_mmseg.models.rewards.CallableReward`) needs
    the image too. During ``loss`` the preprocessed images (B, 3, H, W) are
    set as ``reward_inputs`` on every head that has that attribute, and
    cleared afterwards (they never enter a checkpoint).

    Reward fine-tuning with a KL anchor (``RSSHead(anchor_weight > 0)``):
    :meth:`set_anchor` holds a frozen copy of the starting model (built by
    :class:`~rss_mmseg.engine.hooks.PolicyAnchorHook`) outside the module
    tree. During ``loss`` it runs on the same images under
    ``torch.no_grad()``, first, with the random number generators restored
    afterwards: a reference in training mode draws the same dropout (and
    drop-path) masks in the backbone and the decode head as the policy's
    forward that follows (an anchored auxiliary head draws its own), and
    the policy's random stream (its sampled actions) is the same as
    without the anchor. The main output of its copy of each anchored head (picked
    as the head picks its own) is set as that head's ``anchor_logits``
    and cleared afterwards. Everything else, prediction included, is
    ``EncoderDecoder``'s.
    """

    @property
    def anchor(self) -> Optional[nn.Module]:
        """The frozen starting model the anchored heads are pulled to."""
        holder = self.__dict__.get('_policy_anchor')
        return None if holder is None else holder.module

    def set_anchor(self, model: Optional[nn.Module]) -> None:
        """Hold ``model`` (a frozen copy of this segmentor with the starting
        weights) as the reference of the anchored heads, without making it
        a submodule; None removes it."""
        if model is not None and not isinstance(model, EncoderDecoder):
            raise TypeError('the anchor must be a copy of the segmentor '
                            f'(an EncoderDecoder), got {type(model).__name__}')
        self.__dict__['_policy_anchor'] = _Unregistered(model)

    @torch.no_grad()
    def _set_anchor_logits(self, inputs: Tensor,
                           heads: List[Tuple[str, nn.Module]]) -> None:
        """The reference's main logits for each anchored head."""
        ref = self.anchor
        param = next(ref.parameters(), None)
        if param is not None and param.device != inputs.device:
            ref.to(inputs.device)
        ref_modules = dict(ref.named_modules())
        device = inputs.device
        # the CPU stream is always forked; an accelerator's only when named
        # (device_type=None is refused before torch 2.14, so it is not passed)
        fork = dict(devices=[]) if device.type == 'cpu' else dict(
            devices=[device], device_type=device.type)
        with torch.random.fork_rng(**fork):
            feats = ref.extract_feat(inputs)
            for name, head in heads:
                ref_head = ref_modules.get(name)
                if ref_head is None:
                    raise ValueError(
                        f'the anchor model has no {name} (anchored head): '
                        'it must be a copy of this model (PolicyAnchorHook '
                        'builds one)')
                main, _ = head._split_outputs(ref_head.forward(feats))
                head.anchor_logits = main

    def loss(self, inputs: Tensor,
             data_samples: SampleList) -> Dict[str, Tensor]:
        heads = [
            m for m in self.modules()
            if m is not self and hasattr(m, 'reward_inputs')
        ]
        anchored = anchored_heads(self)
        for head in heads:
            head.reward_inputs = inputs
        try:
            if anchored and self.anchor is not None:
                self._set_anchor_logits(inputs, anchored)
            return super().loss(inputs, data_samples)
        finally:
            for head in heads:
                head.reward_inputs = None
            for _, head in anchored:
                head.anchor_logits = None
