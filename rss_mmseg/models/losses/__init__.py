from .entropy_control import EntropyControl
from .local_expectation_loss import LocalExpectationLoss
from .pixel_reward_loss import PixelRewardLoss, collapse_weights
from .psd_loss import PSDLoss
from .psr_reward_loss import PSRRewardLoss

__all__ = [
    'PixelRewardLoss', 'collapse_weights', 'PSRRewardLoss', 'PSDLoss',
    'EntropyControl', 'LocalExpectationLoss'
]
