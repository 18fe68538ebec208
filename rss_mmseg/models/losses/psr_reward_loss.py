"""Image-level REINFORCE on the PSR cell grid (Progressive Scale Rewards).

The head pools its logits to an ``s_h x s_w`` grid of cells, samples K cell
action grids ``a_k`` from ``pi = softmax(cell logits)``, upsamples them to
full resolution and scores each with one image reward ``R_k``. With
advantages ``A_kb = R_kb - baseline`` the surrogate is

    L = -1/(K B_valid n) sum_{k,b} A_kb sum_cells log pi(a_kb,cell),

with ``n = s_h * s_w`` cells and ``B_valid`` the images with a reward. The
per-cell mean (rather than the sum) keeps the step size of one cell's logits
comparable to the per-pixel mean of cross-entropy whatever the grid, so the
learning rate need not change when the PSR schedule refines the grid.

With the ``'loo'`` baseline (or ``'none'``) and ``normalize='none'`` the
expected gradient is exactly ``-1/n grad E[R]``. ``'group'`` scales it by
``(K-1)/K`` (the sample's own reward is in its baseline). ``'batch'`` is
biased by ``O(1/(K B))`` for the same reason, and the std normalizations
rescale it (per image for ``'group'``, globally for ``'syncan'``).

When the head samples from ``q != pi`` (a temperature or uniform mixing),
each cell's credit is weighted by its own ratio ``pi / q`` (see
:func:`~rss_mmseg.models.losses.utils.image_policy_gradient`): exploration
then changes which actions are tried, not the expected step, for rewards
whose advantage is a sum over cells (for others the per-cell ratio is an
approximation; the product over all cells would be exact but of unbounded
variance).

The K samples collapse into one weight tensor (see
:func:`~rss_mmseg.models.losses.utils.image_policy_gradient`), so backward
costs the same for any K.
"""
from typing import Dict, Optional

import torch
from mmseg.registry import MODELS
from torch import Tensor, nn

from ..advantage import global_moments, global_sums
from ..policy import PixelPolicy
from .entropy_control import EntropyControl
from .utils import (check_choice, check_loss_args, check_uniform_pull,
                    image_policy_gradient)

BASELINES = ('group', 'loo', 'batch', 'none')
NORMALIZES = ('none', 'group', 'syncan')

__all__ = ['PSRRewardLoss', 'check_image_inputs']


def check_image_inputs(name: str, policy: PixelPolicy, actions: Tensor,
                       rewards: Tensor, valid: Tensor) -> None:
    """Check the shapes of an image-level loss call; raise ValueError."""
    B, _, h, w = policy.logits.shape
    if actions.dim() != 4 or tuple(actions.shape[1:]) != (B, h, w):
        raise ValueError(f'{name} needs cell actions (K, {B}, {h}, {w}) '
                         'matching the policy logits (B, C, s_h, s_w), got '
                         f'{tuple(actions.shape)}')
    K = actions.shape[0]
    if tuple(rewards.shape) != (K, B):
        raise ValueError(f'{name} needs image rewards (K, B) = ({K}, {B}), '
                         f'got {tuple(rewards.shape)}; pixel-level rewards '
                         'go with PixelRewardLoss')
    if tuple(valid.shape) != (B, ) or valid.dtype != torch.bool:
        raise ValueError(f'{name} needs a bool valid mask of shape ({B},), '
                         f'got {valid.dtype} {tuple(valid.shape)}')


@MODELS.register_module()
class PSRRewardLoss(nn.Module):
    """Image-level policy-gradient loss on the PSR cell grid.

    Called by ``RSSHead`` as ``loss(policy, actions, rewards, valid)`` with
    the policy over the cell logits (B, C, s_h, s_w), the K sampled cell
    grids (K, B, s_h, s_w), their image rewards (K, B) and the images that
    got a reward (B,). Images with ``valid=False`` get zero advantage and
    zero gradient.

    Args:
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        baseline (str): Baseline subtracted from the reward ``R_kb``:

            - ``'group'``: mean reward of the K samples of the same image
              (expected gradient scaled by ``(K-1)/K``).
            - ``'loo'``: mean reward of the other K-1 samples of the same
              image (leave-one-out; unbiased; needs ``num_samples >= 2``).
              Default.
            - ``'batch'``: mean reward over all valid samples and images of
              the global batch (all-reduced over ranks).
            - ``'none'``: no baseline.
        normalize (str): Division of the advantages:

            - ``'none'``: none.
            - ``'group'``: by the (population) std of the image's K rewards
              plus ``eps`` (as GRPO; needs ``num_samples >= 2`` and
              baseline ``'group'`` or ``'loo'``).
            - ``'syncan'``: SyncAN, by the std of the advantages over the
              valid samples of the whole distributed batch (all-reduced),
              plus ``eps``. Default.
        entropy_weight (float): Weight of an entropy bonus, the mean entropy
            of the cell policy over the cells of the valid images, added to
            the gradient in closed form. Defaults to 0.0.
        entropy_target (float, optional): Hold the mean entropy of the
            cell policy at this fraction of ``log C`` by adapting the bonus
            weight after every step (starting from ``entropy_weight``), see
            :class:`~rss_mmseg.models.losses.entropy_control.
            EntropyControl`; logged as ``entropy_coef`` and
            ``cell_entropy``. Defaults to None (fixed weight).
        entropy_rate (float): Step of the log weight per iteration and unit
            of entropy error, with ``entropy_target``. Defaults to 0.05.
        uniform_weight (float): Weight of a pull toward the uniform policy
            that keeps small classes sampled, the mean over the cells of the
            valid images (see :func:`~.utils.uniform_pull`). Defaults to 0.0.
        uniform_floor (float, optional): Pull only the classes below this
            probability. Defaults to None (``KL(uniform || pi)``).
        eps (float): Added to the stds. Defaults to 1e-6.
        loss_name (str): Name of the loss item; must start with ``loss_``
            to be back-propagated. Defaults to 'loss_psr'.
    """

    level = 'image'
    min_samples = 1

    def __init__(self,
                 loss_weight: float = 1.0,
                 baseline: str = 'loo',
                 normalize: str = 'syncan',
                 entropy_weight: float = 0.0,
                 entropy_target: Optional[float] = None,
                 entropy_rate: float = 0.05,
                 uniform_weight: float = 0.0,
                 uniform_floor: Optional[float] = None,
                 eps: float = 1e-6,
                 loss_name: str = 'loss_psr') -> None:
        super().__init__()
        check_choice('baseline', baseline, BASELINES)
        check_choice('normalize', normalize, NORMALIZES)
        if normalize == 'group' and baseline not in ('group', 'loo'):
            # an image whose K rewards tie has std 0: only an in-image
            # baseline makes its advantages 0 rather than R / eps
            raise ValueError('normalize="group" divides by the std of each '
                             "image's K rewards and needs an in-image "
                             'baseline ("group" or "loo"), got '
                             f'baseline={baseline!r}')
        check_loss_args(loss_name, eps)
        self.loss_weight = loss_weight
        self.baseline = baseline
        self.normalize = normalize
        self.uniform_weight, self.uniform_floor = check_uniform_pull(
            uniform_weight, uniform_floor)
        self.entropy = EntropyControl(entropy_weight, entropy_target,
                                      entropy_rate)
        self.eps = eps
        self._loss_name = loss_name

    @torch.no_grad()
    def advantages(self, rewards: Tensor, valid: Tensor) -> Dict[str, Tensor]:
        """Advantages (K, B), zero on invalid images, and their raw std.

        Returns:
            dict[str, Tensor]: ``'adv'``: the advantages; ``'adv_std'``:
            the std of the advantages before the std normalization, over
            the valid samples of the local batch (the spread of the reward
            signal; 0 means the samples of every image scored the same).
        """
        K = rewards.shape[0]
        if K < 2 and (self.baseline == 'loo' or self.normalize == 'group'):
            option = (f'baseline={self.baseline!r}' if self.baseline == 'loo'
                      else f'normalize={self.normalize!r}')
            raise ValueError(
                f'PSRRewardLoss with {option} needs at least 2 samples per '
                f'image, got K={K}: set model.decode_head.num_samples >= 2 '
                'or use baseline="batch"/"none" and normalize="syncan"/'
                '"none"')
        valid_k = valid.unsqueeze(0).expand_as(rewards)
        r = rewards.float().masked_fill(~valid_k, 0.0)
        if self.baseline == 'group':
            adv = r - r.mean(0, keepdim=True)
        elif self.baseline == 'loo':
            adv = r - (r.sum(0, keepdim=True) - r) / (K - 1)
        elif self.baseline == 'batch':
            total, count = global_sums([r], valid, K).unbind()
            adv = r - (total / count.clamp(min=1.0)).float()
        else:
            adv = r
        adv = adv.masked_fill(~valid_k, 0.0)

        num = valid_k.sum().clamp(min=1).double()
        mean = adv.sum(dtype=torch.float64) / num
        adv_std = (adv.double().square().sum() / num -
                   mean.square()).clamp(min=0.0).sqrt()

        if self.normalize == 'group':
            adv = adv / (r.std(0, correction=0, keepdim=True) + self.eps)
        elif self.normalize == 'syncan':
            # collective: called on every rank, even with no valid image
            _, std, _ = global_moments(adv, valid_k)
            adv = adv / (std.float() + self.eps)
        return dict(adv=adv, adv_std=adv_std.float())

    def forward(self, policy: PixelPolicy, actions: Tensor, rewards: Tensor,
                valid: Tensor) -> Dict[str, Tensor]:
        """Compute the loss (with its gradient) and its statistics.

        Args:
            policy (:obj:`PixelPolicy`): Policy over the cell logits
                (B, C, s_h, s_w); they receive the gradient.
            actions (Tensor): Sampled cell actions (K, B, s_h, s_w), long.
            rewards (Tensor): Image rewards (K, B).
            valid (Tensor): Images with a reward (B,), bool.

        Returns:
            dict[str, Tensor]: ``{loss_name: loss, 'adv_std': std}``; the
            loss value is the surrogate (minus the entropy bonus), only its
            gradient is meaningful.
        """
        check_image_inputs(
            type(self).__name__, policy, actions, rewards, valid)
        K, B, h, w = actions.shape
        stats = self.advantages(rewards, valid)
        norm = valid.sum().clamp(min=1).float() * (h * w)
        ent_scale = None
        if self.entropy.active:
            ent_scale = valid.float() * (
                self.entropy.weight.float() * self.loss_weight / norm)
        uni_scale = None
        if self.uniform_weight > 0:
            uni_scale = valid.float() * (
                self.uniform_weight * self.loss_weight / norm)
        loss = image_policy_gradient(policy, actions, stats['adv'],
                                     self.loss_weight / (K * norm), ent_scale,
                                     uni_scale, self.uniform_floor)
        out = {self.loss_name: loss, 'adv_std': stats['adv_std']}
        out.update(self.entropy.step(policy, valid))
        return out

    @property
    def loss_name(self) -> str:
        """Name of the loss item in the log; starts with ``loss_``."""
        return self._loss_name

    def extra_repr(self) -> str:
        return (f'baseline={self.baseline!r}, normalize={self.normalize!r}, '
                f'entropy={self.entropy.extra_repr()}, '
                f'uniform_weight={self.uniform_weight}, '
                f'uniform_floor={self.uniform_floor}, '
                f'loss_weight={self.loss_weight}')
