"""Local variants: samples that differ from a base sample in one block.

For pair comparisons (:class:`~rss_mmseg.models.losses.PSDLoss`) two
independent samples differ almost everywhere, so one reward difference has to
be shared by all cells. Local variants keep the difference small and known:
sample 0 is a full sample of the policy, and each of samples 1..K-1 copies it
and re-samples only the cells of one random axis-aligned block. Every
sample is still marginally a sample of the policy (a block is re-drawn from
the same probabilities, independently of sample 0), so the pair advantages
stay comparisons between policy samples, but a pair differs at most in one
block.
"""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .policy import sample_inverse_cdf

__all__ = ['sample_local_variants', 'block_size']


def block_size(block: Union[float, Sequence[int]],
               grid: Tuple[int, int]) -> Tuple[int, int]:
    """Block size ``(bh, bw)`` in cells from a size or a grid fraction.

    Args:
        block (float | Sequence[int]): ``(bh, bw)`` in cells, or a fraction
            ``f`` in (0, 1] of each grid side (``bh = max(1,
            round(f * s_h))``).
        grid (tuple[int, int]): The grid ``(s_h, s_w)``.

    Returns:
        tuple[int, int]: ``(bh, bw)``, checked to fit the grid.
    """
    s_h, s_w = grid
    if isinstance(block, (int, float)) and not isinstance(block, bool):
        if isinstance(block, int) or not 0.0 < block <= 1.0:
            raise ValueError('block must be (bh, bw) in cells or a float '
                             f'fraction of the grid side in (0, 1], got '
                             f'{block!r}')
        return (max(1, math.floor(block * s_h + 0.5)),
                max(1, math.floor(block * s_w + 0.5)))
    if len(block) != 2 or not all(
            isinstance(b, int) and not isinstance(b, bool) and b >= 1
            for b in block):
        raise ValueError('block must be (bh, bw) with positive ints or a '
                         f'float fraction in (0, 1], got {block!r}')
    bh, bw = block
    if bh > s_h or bw > s_w:
        raise ValueError(f'block {(bh, bw)} is larger than the grid '
                         f'{(s_h, s_w)}: use a smaller block or a fraction '
                         'of the grid side')
    return bh, bw


def sample_local_variants(
        probs: Tensor,
        num_samples: int,
        block: Union[float, Sequence[int]],
        generator: Optional[torch.Generator] = None,
        return_mask: bool = False) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """A full sample and K-1 copies re-sampled in one random block each.

    Sample 0 is drawn from ``probs`` with
    :func:`~rss_mmseg.models.policy.sample_inverse_cdf`. Sample k >= 1
    equals sample 0 except inside one axis-aligned ``bh x bw`` block, whose
    top-left cell is uniform over the positions where it fits,
    independently per image and sample; inside it the cells are re-drawn
    from ``probs``. Vectorized with masks: K full grids are drawn (the
    sampler costs about one ``exp`` per cell) and merged with ``where``.

    Args:
        probs (Tensor): Cell probabilities (B, C, s_h, s_w).
        num_samples (int): Number K of samples (>= 1).
        block (float | Sequence[int]): Block size ``(bh, bw)`` in cells, or
            a float fraction in (0, 1] of the grid side, see
            :func:`block_size`.
        generator (torch.Generator, optional): Random generator (on the
            device of ``probs``).
        return_mask (bool): Also return the re-sampled blocks. Defaults to
            False.

    Returns:
        Tensor | tuple[Tensor, Tensor]: Actions (K, B, s_h, s_w), long;
        with ``return_mask`` also the block masks (K, B, s_h, s_w), bool
        (all False for sample 0).
    """
    if probs.dim() != 4:
        raise ValueError('probs must have shape (B, C, s_h, s_w), got '
                         f'{tuple(probs.shape)}')
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f'num_samples must be an int >= 1, got '
                         f'{num_samples!r}')
    B, _, s_h, s_w = probs.shape
    bh, bw = block_size(block, (s_h, s_w))
    K = num_samples
    fresh = sample_inverse_cdf(probs, K, generator=generator)
    mask = torch.zeros((K, B, s_h, s_w), dtype=torch.bool, device=probs.device)
    if K > 1:
        top = torch.randint(
            0,
            s_h - bh + 1, (K - 1, B, 1, 1),
            generator=generator,
            device=probs.device)
        left = torch.randint(
            0,
            s_w - bw + 1, (K - 1, B, 1, 1),
            generator=generator,
            device=probs.device)
        rows = torch.arange(s_h, device=probs.device).view(1, 1, s_h, 1)
        cols = torch.arange(s_w, device=probs.device).view(1, 1, 1, s_w)
        mask[1:] = ((rows >= top) & (rows < top + bh) & (cols >= left) &
                    (cols < left + bw))
    actions = torch.where(mask, fresh, fresh[:1])
    return (actions, mask) if return_mask else actions
