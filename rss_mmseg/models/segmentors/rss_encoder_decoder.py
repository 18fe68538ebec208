"""EncoderDecoder that lets rewards see the batch images."""
from typing import Dict

from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import SampleList
from torch import Tensor


@MODELS.register_module()
class RSSEncoderDecoder(EncoderDecoder):
    """mmseg's ``EncoderDecoder``, handing the batch images to RSS rewards.

    A decode head only receives features, but a reward that scores the
    action map *with* its image (a learned reward model, a human rating
    service behind :class:`~rss_mmseg.models.rewards.CallableReward`) needs
    the image too. During ``loss`` the preprocessed images (B, 3, H, W) are
    set as ``reward_inputs`` on every head that has that attribute, and
    cleared afterwards (they never enter a checkpoint). Everything else,
    prediction included, is ``EncoderDecoder``'s.
    """

    def loss(self, inputs: Tensor,
             data_samples: SampleList) -> Dict[str, Tensor]:
        heads = [
            m for m in self.modules()
            if m is not self and hasattr(m, 'reward_inputs')
        ]
        for head in heads:
            head.reward_inputs = inputs
        try:
            return super().loss(inputs, data_samples)
        finally:
            for head in heads:
                head.reward_inputs = None
