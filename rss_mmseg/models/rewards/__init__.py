from .boundary import BoundaryFScoreReward
from .callable import CallableReward
from .checks import RewardError, check_reward_output
from .image import (ImageAccuracyReward, ImageDiceReward, ImageMIoUReward,
                    ImageRecallReward, per_image_cell_confusion,
                    per_image_confusion)
from .marginal_miou import MarginalMIoUReward
from .pixel import PixelMatchReward, stack_gt_sem_seg
from .weighted_sum import WeightedSumReward

__all__ = [
    'PixelMatchReward', 'stack_gt_sem_seg', 'ImageMIoUReward',
    'ImageAccuracyReward', 'ImageDiceReward', 'per_image_confusion',
    'per_image_cell_confusion',
    'CallableReward', 'RewardError', 'check_reward_output',
    'BoundaryFScoreReward', 'WeightedSumReward', 'ImageRecallReward',
    'MarginalMIoUReward'
]
