"""PSD: Pair-wise Spatial Difference, an image-level pair comparison loss.

For pairs ``(k, l)`` of cell action grids sampled for the same image, with
rewards ``R_k``, ``R_l`` and ``D_kl`` the cells where ``a_k != a_l``, the
pair surrogate is

    S_kl = -(R_k - R_l) / |D_kl| * sum_{cells in D_kl}
           (log pi(a_k) - log pi(a_l)) / 2.

Only the cells where the two samples differ can explain their reward
difference. On the cells where they agree the two log-probabilities cancel,
so restricting the sum to ``D_kl`` is exact: the real choice is normalizing
by ``|D_kl|`` (``region_norm='pair'``), which gives every pair the same
total step however small the region it changed, against the number of cells
(``'none'``), or relative to the mean region of the batch (``'mean'``). A
pair with ``D_kl`` empty contributes 0. The loss is the mean of ``S_kl``
over the pairs and the valid images.

Since ``S_kl`` is linear in the log-probabilities of whole samples, each
sample gets one scalar weight per image,
``w_kb = sum_{l paired with k} (R_k - R_l) / (2 |D_kl|)``, and the K samples
collapse into one weight tensor (see
:func:`~rss_mmseg.models.losses.utils.image_policy_gradient`): backward costs
the same for any K. As in :class:`PSRRewardLoss`, when the head samples
from ``q != pi`` (temperature, uniform mixing) each cell's credit is
importance weighted by its own ratio ``pi / q``.

Only the sign and size of ``R_k - R_l`` are used, so a preference oracle
("which of the two is better", as +-1) can stand in for the reward.
"""
from typing import Dict, Optional, Tuple, Union

import torch
from mmseg.registry import MODELS
from torch import Tensor, nn

from ..advantage import global_sums
from ..policy import PixelPolicy
from .entropy_control import EntropyControl
from .psr_reward_loss import check_image_inputs
from .utils import (check_choice, check_loss_args, check_uniform_pull,
                    image_policy_gradient)

PAIRS = ('all', 'adjacent', 'base')
NORMALIZES = ('none', 'syncan', 'group')
REGION_NORMS = ('pair', 'mean', 'none')
STEPS = ('gradient', 'natural')
__all__ = ['PSDLoss', 'pair_indices', 'pair_differences']


def pair_indices(num_samples: int,
                 pairs: str = 'all',
                 device=None) -> Tuple[Tensor, Tensor]:
    """Indices ``(k, l)`` of the compared sample pairs, each (P,), long.

    Args:
        num_samples (int): Number K of samples per image.
        pairs (str): ``'all'``: the K(K-1)/2 pairs ``k < l``;
            ``'adjacent'``: (0, 1), (2, 3), ... (K must be even);
            ``'base'``: (0, 1), (0, 2), ..., (0, K-1), each sample against
            sample 0 (for local variants of a base sample).
        device (torch.device, optional): Device of the indices.
    """
    if pairs == 'all':
        k, l = torch.triu_indices(num_samples, num_samples, 1, device=device)
        return k, l
    if pairs == 'base':
        l = torch.arange(1, num_samples, device=device)
        return torch.zeros_like(l), l
    if num_samples % 2:
        raise ValueError('pairs="adjacent" compares samples (0, 1), (2, 3), '
                         f'... and needs an even number of samples, got '
                         f'K={num_samples}: set model.decode_head.num_samples '
                         'to an even number or use pairs="all"')
    k = torch.arange(0, num_samples, 2, device=device)
    return k, k + 1


@torch.no_grad()
def pair_differences(actions: Tensor,
                     pairs: str = 'all',
                     num_classes: Optional[int] = None) -> Tensor:
    """Number of cells ``|D_kl|`` where the paired samples differ.

    ``'adjacent'`` and ``'base'`` are one vectorized compare each. ``'all'``
    loops over the first sample k and compares it with samples k+1..K-1 at
    once: memory stays O(K B cells) and, on CPU at (K=32, 8 images, 32x32
    cells), it takes ~10 ms against ~50-80 ms for gathering the pairs and
    ~180 ms for one (K, 1, B, cells) vs (1, K, B, cells) compare (memory
    bound).

    Args:
        actions (Tensor): Actions (K, B, h, w).
        pairs (str): ``'all'``, ``'adjacent'`` or ``'base'``, see
            :func:`pair_indices`.
        num_classes (int, optional): Number of classes; when it is at most
            256 the actions are compared as uint8 (less memory traffic).

    Returns:
        Tensor: Counts (P, B), int32, in the order of :func:`pair_indices`.
    """
    flat = actions.flatten(2)  # (K, B, cells)
    if num_classes is not None and num_classes <= 256:
        flat = flat.to(torch.uint8)
    if pairs == 'adjacent':
        pair_indices(flat.shape[0], pairs)  # checks that K is even
        return (flat[0::2] != flat[1::2]).sum(-1, dtype=torch.int32)
    if pairs == 'base':
        return (flat[:1] != flat[1:]).sum(-1, dtype=torch.int32)
    rows = [(flat[k:k + 1] != flat[k + 1:]).sum(-1, dtype=torch.int32)
            for k in range(flat.shape[0] - 1)]
    if not rows:
        return flat.new_zeros((0, flat.shape[1]), dtype=torch.int32)
    return torch.cat(rows)


@MODELS.register_module()
class PSDLoss(nn.Module):
    """Pair-wise Spatial Difference loss for image-level rewards.

    Called by ``RSSHead`` as ``loss(policy, actions, rewards, valid)`` with
    the policy over the cell logits (B, C, s_h, s_w), the K >= 2 sampled
    cell grids (K, B, s_h, s_w) (independent, or local variants of a base
    sample from :func:`~rss_mmseg.models.pair_sampling.
    sample_local_variants`), their image rewards (K, B) and the images that
    got a reward (B,). Images with ``valid=False`` get zero gradient.

    Args:
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        pairs (str): Compared pairs of samples: ``'all'`` K(K-1)/2 pairs
            (default); ``'adjacent'`` (0, 1), (2, 3), ... (K even;
            independent pairs, K/2 of them); ``'base'`` (0, 1), ...,
            (0, K-1), every sample against sample 0 (with local variants
            of a base sample, the credit ``R_k - R_0`` on the re-sampled
            block).
        region_norm (str | bool): What each pair's sum over ``D_kl`` is
            divided by. ``'pair'`` (or True, default): ``|D_kl|``, the
            number of cells where its samples differ, so every pair takes
            the same total step however small its region. ``'mean'``:
            ``|D_kl|`` times ``cells / mean |D|`` (mean over the valid
            pairs of the distributed batch): pairs are weighted against
            each other as with ``'pair'``, but the step keeps the size of
            ``'none'`` however much the samples agree (with ``'pair'`` it
            grows as ``cells / |D|`` when the policy sharpens). ``'none'``
            (or False): the number of cells (with K = 2 exactly PSR with the
            leave-one-out baseline).
        normalize (str): ``'syncan'`` (default): divide the pair advantages
            ``R_k - R_l`` by their root mean square over the valid pairs
            (valid image, ``D_kl`` not empty) of the whole distributed
            batch (all-reduced), plus ``eps``. This is their std over both
            orders ``(k, l)`` and ``(l, k)``, whose mean is 0: no mean is
            subtracted, since the order of a pair is arbitrary.
            ``'group'``: divide by the std of the image's own K rewards
            plus ``eps`` (each image's comparisons get unit scale, as in
            group-normalized PSR). ``'none'``: no normalization.
        entropy_weight (float): Weight of an entropy bonus, the mean entropy
            of the cell policy over the cells of the valid images, added to
            the gradient in closed form. Defaults to 0.0.
        entropy_target (float, optional): Adapt the bonus weight to hold
            this fraction of ``log C`` as cell entropy, as in
            :class:`PSRRewardLoss`. Defaults to None (fixed weight).
        entropy_rate (float): Its adaptation rate. Defaults to 0.05.
        uniform_weight (float): Weight of a pull toward the uniform policy
            that keeps small classes sampled, the mean over the cells of the
            valid images (see :func:`~.utils.uniform_pull`). Defaults to 0.0.
        uniform_floor (float, optional): Pull only the classes below this
            probability. Defaults to None (``KL(uniform || pi)``).
        step (str): ``'gradient'`` (default): the policy gradient of the
            surrogate, ``-(W_c - pi_c sum W)`` on each cell's logits with
            ``W_c`` the summed weights of the samples that chose class
            ``c`` there. In expectation ``W_c`` is ``pi_c`` times the
            class's advantage, so a class the policy gives 1% moves 1% as
            fast as it should. ``'natural'``: the natural-gradient step
            ``-(V_c - mean_c V_c)``, ``V_c = W_c / max(pi_c,
            natural_floor)``: each logit moves by the class's
            importance-weighted advantage, at the price of more variance
            on rare classes (a black-box counterpart of
            :class:`LocalExpectationLoss`'s ``step='mirror'``). When the
            head explores (``q != pi``) ``W_c`` is weighted by
            ``pi_c / q_c`` first, so exploration lowers the variance of a
            rare class's credit but not what the step estimates.
        natural_floor (float): With ``step='natural'``, the probability
            below which ``pi_c`` is not divided by any further (bounds the
            variance: at most ``1 / natural_floor`` times the credit).
            Defaults to 0.05.
        eps (float): Added to the std. Defaults to 1e-6.
        loss_name (str): Name of the loss item; must start with ``loss_``
            to be back-propagated. Defaults to 'loss_psd'.
    """

    level = 'image'
    min_samples = 2

    def __init__(self,
                 loss_weight: float = 1.0,
                 pairs: str = 'all',
                 region_norm: Union[str, bool] = 'pair',
                 normalize: str = 'syncan',
                 entropy_weight: float = 0.0,
                 entropy_target: Optional[float] = None,
                 entropy_rate: float = 0.05,
                 uniform_weight: float = 0.0,
                 uniform_floor: Optional[float] = None,
                 step: str = 'gradient',
                 natural_floor: float = 0.05,
                 eps: float = 1e-6,
                 loss_name: str = 'loss_psd') -> None:
        super().__init__()
        check_choice('pairs', pairs, PAIRS)
        check_choice('step', step, STEPS)
        if not 0.0 < natural_floor <= 1.0:
            raise ValueError('natural_floor is a class probability and must '
                             f'be in (0, 1], got {natural_floor}')
        check_choice('normalize', normalize, NORMALIZES)
        if isinstance(region_norm, bool):
            region_norm = 'pair' if region_norm else 'none'
        if region_norm not in REGION_NORMS:
            raise ValueError(f'region_norm must be one of {REGION_NORMS} '
                             f'(or True/False), got {region_norm!r}')
        check_loss_args(loss_name, eps)
        self.loss_weight = loss_weight
        self.pairs = pairs
        self.region_norm = region_norm
        self.normalize = normalize
        self.uniform_weight, self.uniform_floor = check_uniform_pull(
            uniform_weight, uniform_floor)
        self.entropy = EntropyControl(entropy_weight, entropy_target,
                                      entropy_rate)
        self.step = step
        self.natural_floor = float(natural_floor)
        self.eps = eps
        self._loss_name = loss_name

    @torch.no_grad()
    def sample_weights(self,
                       actions: Tensor,
                       rewards: Tensor,
                       valid: Tensor,
                       num_classes: Optional[int] = None) -> Dict[str, Tensor]:
        """Per-sample weights ``w_kb`` (K, B) and the logged statistics.

        Returns:
            dict[str, Tensor]: ``'weights'`` (K, B), zero on invalid
            images; ``'adv_std'``: the root mean square of the pair
            advantages ``R_k - R_l`` over the valid pairs of the local
            batch, before normalization; ``'psd_region'``: the mean of
            ``|D_kl| / cells`` over the pairs of the valid local images.
        """
        K, B, h, w = actions.shape
        if K < self.min_samples:
            raise ValueError(
                f'PSDLoss compares pairs of samples (min_samples='
                f'{self.min_samples}) and got K={K} sample per image: set '
                f'model.decode_head.num_samples >= {self.min_samples}')
        first, second = pair_indices(K, self.pairs, actions.device)
        P = first.numel()
        region = pair_differences(actions, self.pairs, num_classes)  # (P, B)
        r = rewards.float()
        delta = r[first] - r[second]
        pair_valid = valid.unsqueeze(0) & (region > 0)
        delta = delta.masked_fill(~pair_valid, 0.0)

        sq_sum = delta.double().square().sum()
        adv_std = (sq_sum / pair_valid.sum().clamp(min=1)).sqrt()
        valid_images = valid.sum().clamp(min=1)
        psd_region = (region.double() * valid).sum() / (
            valid_images * P * h * w)
        if self.normalize == 'syncan':
            # collective: called on every rank, even with no valid pair
            total_sq, count = global_sums([delta.square()],
                                          pair_valid).unbind()
            rms = (total_sq / count.clamp(min=1.0)).sqrt()
            delta = delta / (rms.float() + self.eps)
        elif self.normalize == 'group':
            std = r.std(0, unbiased=False)  # (B,) over the image's K rewards
            delta = delta / (std + self.eps)

        if self.region_norm == 'none':
            denom = torch.full_like(delta, float(h * w))
        else:
            denom = region.clamp(min=1).float()
        if self.region_norm == 'mean':
            # collective: called on every rank, even with no valid pair
            total, count = global_sums([region.double() * pair_valid],
                                       pair_valid).unbind()
            mean_region = (total / count.clamp(min=1.0)).clamp(min=1.0)
            denom = denom * float(h * w) / mean_region.float()
        coef = delta / (2.0 * denom)
        weights = r.new_zeros((K, B))
        weights.index_add_(0, first, coef)
        weights.index_add_(0, second, -coef)
        return dict(
            weights=weights,
            adv_std=adv_std.float(),
            psd_region=psd_region.float())

    def forward(self, policy: PixelPolicy, actions: Tensor, rewards: Tensor,
                valid: Tensor) -> Dict[str, Tensor]:
        """Compute the loss (with its gradient) and its statistics.

        Args:
            policy (:obj:`PixelPolicy`): Policy over the cell logits
                (B, C, s_h, s_w); they receive the gradient.
            actions (Tensor): Sampled cell actions (K, B, s_h, s_w), long,
                K >= 2.
            rewards (Tensor): Image rewards (K, B).
            valid (Tensor): Images with a reward (B,), bool.

        Returns:
            dict[str, Tensor]: ``{loss_name: loss, 'adv_std': ...,
            'psd_region': ...}``; the loss value is the mean pair surrogate
            (minus the entropy bonus), only its gradient is meaningful.
        """
        check_image_inputs(
            type(self).__name__, policy, actions, rewards, valid)
        K, B, h, w = actions.shape
        stats = self.sample_weights(actions, rewards, valid,
                                    policy.num_classes)
        num_valid = valid.sum().clamp(min=1).float()
        ent_scale = None
        if self.entropy.active:
            ent_scale = valid.float() * (self.entropy.weight.float() *
                                         self.loss_weight /
                                         (h * w)) / num_valid
        uni_scale = None
        if self.uniform_weight > 0:
            uni_scale = valid.float() * (self.uniform_weight *
                                         self.loss_weight /
                                         (h * w)) / num_valid
        num_pairs = dict(
            all=K * (K - 1) // 2, adjacent=K // 2, base=K - 1)[self.pairs]
        scale = self.loss_weight / (num_valid * num_pairs)
        loss = image_policy_gradient(
            policy, actions, stats['weights'], scale, ent_scale, uni_scale,
            self.uniform_floor,
            self.natural_floor if self.step == 'natural' else None)
        out = {
            self.loss_name: loss,
            'adv_std': stats['adv_std'],
            'psd_region': stats['psd_region']
        }
        out.update(self.entropy.step(policy, valid))
        return out

    @property
    def loss_name(self) -> str:
        """Name of the loss item in the log; starts with ``loss_``."""
        return self._loss_name

    def extra_repr(self) -> str:
        return (f'pairs={self.pairs!r}, region_norm={self.region_norm!r}, '
                f'normalize={self.normalize!r}, '
                f'entropy={self.entropy.extra_repr()}, '
                f'uniform_weight={self.uniform_weight}, '
                f'uniform_floor={self.uniform_floor}, step={self.step!r}, '
                f'natural_floor={self.natural_floor}, '
                f'loss_weight={self.loss_weight}')
