from .pixel import PixelMatchReward, stack_gt_sem_seg

__all__ = ['PixelMatchReward', 'stack_gt_sem_seg']
