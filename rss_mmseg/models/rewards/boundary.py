"""Boundary reward: how well a sampled map traces the reference's outlines."""
from numbers import Integral
from typing import List, Optional, Tuple

import torch
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import Tensor

from ...evaluation.functional import (boundary_fscore, boundary_match_counts,
                                      disc_offsets)
from .pixel import stack_gt_sem_seg


@MODELS.register_module()
class BoundaryFScoreReward:
    """Per-image mean boundary F-score of each sampled map.

    The same per-class boundary matching as ``BoundaryFScoreMetric``
    (a boundary pixel of class ``c`` is matched by one of the same class in
    the other map within ``tolerance`` pixels), scored per image and sample
    and averaged over the classes with a boundary in the reference or the
    sampled map: a boundary the image lacks costs as a class with F = 0.
    An image where neither map has a boundary scores 1. Images without a
    scored pixel are invalid.

    All K x B maps are scored at once, the references' boundaries found
    once for the K samples
    (:func:`~rss_mmseg.evaluation.functional.boundary_match_counts`).

    Args:
        num_classes (int): Number of classes of the actions.
        tolerance (int): Matching distance in pixels, at the resolution of
            the label maps the head is trained on. Defaults to 2.
        ignore_index (int): Reference value of unscored pixels. Defaults to
            255.
    """

    level = 'image'
    needs_inputs = False
    value_range: Tuple[float, float] = (0.0, 1.0)

    def __init__(self,
                 num_classes: int,
                 tolerance: int = 2,
                 ignore_index: int = 255) -> None:
        if isinstance(num_classes, bool) or not isinstance(
                num_classes, Integral) or num_classes < 1:
            raise ValueError('BoundaryFScoreReward: num_classes must be a '
                             f'positive int, got {num_classes!r}')
        disc_offsets(tolerance)  # validates it
        self.num_classes = int(num_classes)
        self.tolerance = tolerance
        self.ignore_index = int(ignore_index)

    def __call__(self,
                 actions: Tensor,
                 data_samples: List[SegDataSample],
                 inputs: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Score action maps (K, B, H, W) against the batch's references.

        Returns:
            tuple[Tensor, Tensor]: Rewards (K, B) float32 and the valid mask
            (B,) bool.
        """
        K, B, H, W = actions.shape
        reference = stack_gt_sem_seg(data_samples).to(actions.device)
        if tuple(reference.shape) != (B, H, W):
            raise ValueError(f'actions {tuple(actions.shape)} do not match '
                             f'the reference maps {tuple(reference.shape)}')
        counts = boundary_match_counts(actions, reference, self.num_classes,
                                       self.tolerance, self.ignore_index)
        _, _, fscore = boundary_fscore(counts)  # (K, B, C)
        has_boundary = (counts[1] > 0) | (counts[3] > 0)
        num = has_boundary.sum(-1)
        mean = (fscore * has_boundary).sum(-1) / num.clamp(min=1)
        rewards = torch.where(num > 0, mean, torch.ones_like(mean))
        valid = (reference != self.ignore_index).flatten(1).any(1)
        return rewards.float(), valid

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_classes={self.num_classes}, '
                f'tolerance={self.tolerance}, '
                f'ignore_index={self.ignore_index})')
