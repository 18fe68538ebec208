from .pixel_reward_loss import PixelRewardLoss, collapse_weights

__all__ = ['PixelRewardLoss', 'collapse_weights']
