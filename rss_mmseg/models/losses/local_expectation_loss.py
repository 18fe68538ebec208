"""Local expectation loss: every class of every cell credited exactly.

PSD credits a pair of sampled maps where they differ; its local limit is
the pair that differs in one cell. For a reward that can score every
one-cell variant of a sample exactly (the confusion rewards'
``score_cell_variants``: only the two classes a cell moves between change
their counts), all of those pairs are enumerated instead of sampled. With
``g_i(c) = R(a with cell i set to c) - R(a)`` for a sample ``a``, the
surrogate

    L = -1/cells * sum_i sum_c pi_i(c) * g_i(c) / s

has, w.r.t. cell i's logits, the exact gradient of
``E_{a_i ~ pi_i} R(a_{-i}, a_i)`` with the other cells held at the sample.
Summed over the cells it is an unbiased estimate of the policy gradient of
``E R`` (local expectation gradients, Titsias and Lazaro-Gredilla, NeurIPS
2015) with no variance from sampling the cell's own action, so a sharp
policy, whose samples hardly differ, still gets a signal on every cell.

The price is in reward queries, not compute: ``cells * (C - 1)`` variant
rewards per sample, formed in closed form from the per-cell reference
counts, so it needs a confusion reward (mIoU, Dice, recall, accuracy, or a
:class:`~rss_mmseg.models.rewards.WeightedSumReward` of them); a black-box
scorer could not afford it (use :class:`PSDLoss`). Labels still reach the
gradient only through reward values of whole maps.
"""
from typing import Dict, Optional

import torch
from mmseg.registry import MODELS
from torch import Tensor, nn

from ..advantage import global_sums
from ..policy import PixelPolicy
from .utils import (_PrecomputedGradient, check_choice, check_loss_args,
                    check_uniform_pull, uniform_pull)

NORMALIZES = ('cells', 'syncan', 'group', 'none')
STEPS = ('gradient', 'mirror')
__all__ = ['LocalExpectationLoss']


@MODELS.register_module()
class LocalExpectationLoss(nn.Module):
    """Exact one-cell credit for image-level confusion rewards.

    Called by ``RSSHead`` as ``loss(policy, actions, rewards, valid,
    gains=gains)`` with the policy over the cell logits (B, C, h, w), the K
    sampled cell grids (K, B, h, w), their rewards (K, B), the images that
    got a reward (B,) and the gains of their one-cell variants
    (K, B, C, h, w) (``needs_variants``: the head asks the reward for
    them). The K samples only change which maps the other cells are held
    at; their gains are averaged.

    Args:
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        normalize (str): How the gains are scaled. ``'cells'`` (default):
            times the number of cells of the grid (of all valid images
            when ``pooled``). A cell moving into or
            out of a class of area fraction ``f`` changes an mIoU over
            ``n`` classes by about ``1 / (n f cells)``, so the scaled gain
            is about ``1 / (n f)``: 1 for a class of average size, the same
            on a 4x4 grid and at full resolution, and larger for small
            classes, as mIoU weighs them. ``'syncan'``: divided by their
            root mean square over the valid images of the whole
            distributed batch (all-reduced); ``'group'``: by each image's
            own root mean square. Both are dominated by the few cells of
            the smallest class in the batch. ``'none'``: raw gains.
        step (str): ``'gradient'`` (default): the policy gradient above,
            ``-pi (g - sum_c pi g)`` per cell. Its size on a class is
            proportional to the class's probability, so a confidently wrong
            cell (the right class at 1%) hardly moves. ``'mirror'``: a
            mirror-descent step toward the improved policy
            ``q ~ pi * exp(g / temperature)`` per cell, the gradient
            ``pi - q`` of ``KL(q || pi)``: the same direction for small
            gains (``(pi - q) ~ -pi (g - sum pi g) / temperature``) but a
            full step onto a class that gains much however unlikely it is.
        temperature (float): Temperature of the ``'mirror'`` step, in units
            of the normalized gains. Defaults to 1.0.
        pooled (bool): Credit each cell with its change of the batch's
            pooled score (the images' confusion counts summed) instead of
            its own image's: a class weighs by its pixels over the batch,
            as in the dataset-level mIoU of validation, and a fragment of
            a few pixels no longer counts like a whole class (per image,
            such fragments' scaled gains reach hundreds). Defaults to
            False.
        uniform_weight (float): Weight of a pull toward the uniform policy,
            the mean over cells of ``KL(uniform || pi)`` (see
            :func:`~.utils.uniform_pull`). Defaults to 0.0.
        uniform_floor (float, optional): Pull only the classes below this
            probability. Defaults to None.
        eps (float): Added to the root mean square. Defaults to 1e-12.
        loss_name (str): Name of the loss item; must start with ``loss_``.
            Defaults to 'loss_local'.
    """

    level = 'image'
    min_samples = 1
    needs_variants = True

    def __init__(self,
                 loss_weight: float = 1.0,
                 normalize: str = 'cells',
                 step: str = 'gradient',
                 temperature: float = 1.0,
                 pooled: bool = False,
                 uniform_weight: float = 0.0,
                 uniform_floor: Optional[float] = None,
                 eps: float = 1e-12,
                 loss_name: str = 'loss_local') -> None:
        super().__init__()
        check_choice('normalize', normalize, NORMALIZES)
        check_choice('step', step, STEPS)
        if not temperature > 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        check_loss_args(loss_name, eps)
        self.loss_weight = loss_weight
        self.normalize = normalize
        self.step = step
        self.temperature = float(temperature)
        self.pooled = bool(pooled)
        self.uniform_weight, self.uniform_floor = check_uniform_pull(
            uniform_weight, uniform_floor)
        self.eps = eps
        self._loss_name = loss_name

    @torch.no_grad()
    def normalized_gains(self, gains: Tensor, valid: Tensor) -> Tensor:
        """The gains averaged over the K samples and divided by their
        scale: (B, C, h, w), zero for invalid images."""
        K, B = gains.shape[:2]
        factor = valid.view(B, 1, 1, 1).to(gains.dtype)
        if self.normalize == 'cells':
            # the cells the scored confusion counts: the image's, or the
            # batch's when pooled (an integer: mask and scale in one pass,
            # exactly as in two)
            cells = gains[0, 0, 0].numel()
            factor = factor * (valid.sum().to(gains.dtype) *
                               cells if self.pooled else cells)
        mean = gains[0] * factor if K == 1 else gains.mean(0).mul_(factor)
        if self.normalize in ('none', 'cells'):
            return mean
        if self.normalize == 'group':
            square = gains.square().mean((0, 2, 3, 4))  # (B,)
            return mean / (square.sqrt() + self.eps).view(B, 1, 1, 1)
        square_sum, count = global_sums(
            [gains.square().sum((0, 2, 3, 4)) * valid], valid,
            repeats=gains[:, 0].numel())
        scale = (square_sum / count.clamp(min=1)).sqrt() + self.eps
        return mean / scale.to(gains.dtype)

    def forward(self, policy: PixelPolicy, actions: Tensor, rewards: Tensor,
                valid: Tensor, gains: Tensor) -> Dict[str, Tensor]:
        """The loss and logged statistics (``adv_rms``, ``improvable``)."""
        B, C = policy.logits.shape[:2]
        if gains.shape[1:3] != (B, C) or gains.shape[3:] != \
                policy.logits.shape[2:]:
            raise ValueError(
                f'gains {tuple(gains.shape)} do not match the cell logits '
                f'{tuple(policy.logits.shape)} (expected (K, B, C, h, w))')
        cells = policy.logits[0, 0].numel()
        with torch.no_grad():
            probs = policy.probs
            advantage = self.normalized_gains(gains.float(), valid)
            # logged on a subgrid of large grids: the scale of the credit
            # and how many cells have a better class
            mask = valid.view(B, 1, 1, 1).to(probs.dtype)
            stride = max(1, int(cells**0.5) // 64)
            few = advantage[..., ::stride, ::stride]
            denom = (mask.sum() * few[0, 0].numel()).clamp(min=1)
            rms = ((few.square().sum(1) * mask[:, 0]).sum() / denom /
                   C).sqrt()
            improvable = 100.0 * (
                (few.amax(1) > 0) * mask[:, 0]).sum() / denom
            expected = (probs * advantage).sum(1, keepdim=True)
            images = valid.sum().clamp(min=1).to(probs.dtype)
            scale = self.loss_weight / (images * cells)
            value = -scale * expected.sum()
            if self.step == 'gradient':
                # d/dz of -scale sum pi * g: -scale pi (g - sum_c pi g)
                grad = advantage.sub_(expected).mul_(probs).mul_(-scale)
            else:
                # d/dz of scale KL(q || pi): scale (pi - q)
                target = torch.softmax(
                    policy.log_probs + advantage.div_(self.temperature), 1)
                grad = (probs - target).mul_(mask).mul_(scale)
            if self.uniform_weight > 0:
                pull, pull_value = uniform_pull(probs, policy.log_probs,
                                                self.uniform_floor)
                weight = self.uniform_weight * scale
                grad = grad + weight * pull * mask
                value = value + weight * (pull_value * mask).sum()
        loss = _PrecomputedGradient.apply(policy.logits, value, grad)
        return {
            self._loss_name: loss,
            'adv_rms': rms,
            'improvable': improvable,
        }

    @property
    def loss_name(self) -> str:
        return self._loss_name
