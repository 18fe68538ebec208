"""RSS models: the RSS head, the policy, rewards, losses and SyncAN.

Importing this package registers ``RSSHead``, the rewards and the losses
into ``mmseg.registry.MODELS``.
"""
from .advantage import global_moments, sync_normalize
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .pair_sampling import sample_local_variants
from .policy import (PixelPolicy, action_log_prob, gather_actions,
                     sample_gumbel_max, sample_inverse_cdf)
from .rewards import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403

__all__ = [
    'RSSHead', 'PixelPolicy', 'PixelMatchReward', 'PixelRewardLoss',
    'global_moments', 'sync_normalize', 'sample_inverse_cdf',
    'sample_gumbel_max', 'gather_actions', 'action_log_prob',
    'collapse_weights', 'stack_gt_sem_seg', 'RSSEncoderDecoder',
    'ImageMIoUReward', 'ImageAccuracyReward', 'ImageDiceReward',
    'per_image_confusion', 'CallableReward', 'RewardError', 'PSRRewardLoss',
    'PSDLoss', 'sample_local_variants'
]
