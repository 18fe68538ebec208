"""Pixel-level rewards: one reward per pixel for each sampled action map."""
from typing import List, Tuple

import torch
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import Tensor


def stack_gt_sem_seg(data_samples: List[SegDataSample]) -> Tensor:
    """Stack the reference maps of a batch into (B, H, W) long."""
    if not all('gt_sem_seg' in s for s in data_samples):
        raise KeyError('a pixel reward needs gt_sem_seg in every data sample '
                       '(the hidden reference the reward is computed from)')
    return torch.stack([s.gt_sem_seg.data.squeeze(0).long()
                        for s in data_samples])


@MODELS.register_module()
class PixelMatchReward:
    """Reward each pixel for choosing the reference class.

    ``r = correct`` where the action equals the reference class, ``wrong``
    elsewhere, and 0 on ignored pixels, which are also reported as invalid
    (no reward and no gradient). Computed for all samples and images at once.

    The reward is not a module: it holds no parameters and nothing in it is
    trained or saved with the model.

    Args:
        correct (float): Reward of a correct pixel. Defaults to 1.0.
        wrong (float): Reward of a wrong pixel. Defaults to 0.0.
        ignore_index (int): Reference value of pixels that give no reward.
            Defaults to 255.
    """

    level = 'pixel'

    def __init__(self,
                 correct: float = 1.0,
                 wrong: float = 0.0,
                 ignore_index: int = 255) -> None:
        if correct <= wrong:
            raise ValueError('the reward of a correct pixel must exceed that '
                             f'of a wrong one, got correct={correct}, '
                             f'wrong={wrong}')
        self.correct = float(correct)
        self.wrong = float(wrong)
        self.ignore_index = ignore_index
        self.value_range = (self.wrong, self.correct)

    def __call__(self, actions: Tensor,
                 data_samples: List[SegDataSample]) -> Tuple[Tensor, Tensor]:
        """Score action maps against the references of the data samples.

        Args:
            actions (Tensor): Sampled classes of shape (K, B, H, W), long.
            data_samples (list[:obj:`SegDataSample`]): The batch, whose
                ``gt_sem_seg.data`` (1, H, W) is the reference.

        Returns:
            tuple[Tensor, Tensor]: Rewards (K, B, H, W) float32 (0 on
            ignored pixels) and the valid mask (B, H, W) bool.
        """
        gt = stack_gt_sem_seg(data_samples).to(actions.device)
        if gt.shape != actions.shape[1:]:
            raise ValueError(f'actions {tuple(actions.shape)} do not match '
                             f'the reference maps {tuple(gt.shape)}')
        valid = gt != self.ignore_index
        hit = actions == gt
        if self.wrong == 0.0:
            rewards = hit.float()
            if self.correct != 1.0:
                rewards.mul_(self.correct)
        else:
            rewards = torch.where(hit, self.correct, self.wrong)
        rewards.masked_fill_(~valid, 0.0)
        return rewards, valid

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(correct={self.correct}, '
                f'wrong={self.wrong}, ignore_index={self.ignore_index})')
