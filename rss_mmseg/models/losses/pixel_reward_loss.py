"""Policy-gradient loss for pixel-level rewards.

For each pixel, with K actions ``a_k`` drawn from the sampling policy ``q``
(:class:`~rss_mmseg.models.policy.PixelPolicy`; ``q = pi`` by default), the
score-function estimator is

    grad L = -1/(N K) sum_k A_k grad log pi(a_k),
    A_k = w_k r(a_k) - b rho_k,
    w_k = pi(a_k)**(1 - p) / q(a_k),   rho_k = pi(a_k) / q(a_k),

with ``p = iw_power`` and ``b`` a baseline. Its expectation is

    -1/N sum_a r(a) pi(a)**(1 - p) grad log pi(a)

(the baseline term is ``b sum_a pi(a) grad log pi(a) = 0``):

* ``iw_power=0``: plain REINFORCE, the gradient of the expected reward. For
  ``r = 1{a=y}`` it is ``pi(y) grad log pi(y)``, the cross-entropy gradient
  scaled by ``pi(y)``: pixels the network gets wrong (small ``pi(y)``, rare
  classes) barely learn.
* ``iw_power=1`` (default): ``sum_a r(a) grad log pi(a)``, for
  ``r = 1{a=y}`` exactly the cross-entropy gradient ``grad log pi(y)``:
  unbiased cross-entropy from rewards alone, for any sampling policy. On
  policy without baseline, each pixel's gradient is CE's times
  ``n_y / (K pi(y))`` (``n_y`` ~ Binomial(K, pi(y))), a random scale of
  mean 1 and variance ``(1 - pi(y)) / (K pi(y))``.
* in between: the gradient of the generalized cross-entropy
  ``(1 - pi(y)**(1-p)) / (1-p)``.

The baseline is subtracted *after* importance weighting (on-policy,
``r / pi(a) - b``); ``(r - b) / pi(a)`` would add
``-b grad sum_a log pi(a)``, a pull towards the uniform policy. Off-policy it
is scaled by ``rho`` for the same reason.

Because the surrogate is linear in ``log pi``, the K samples collapse into
one weight per pixel and class, ``W[c] = 1/K sum_k A_k 1{a_k = c}``, and the
gradient w.r.t. the logits is formed in closed form,
``(pi * sum_c W[c] - W) / N``, without autograd through ``log_softmax``: the
backward costs one multiplication whatever K, and the whole loss costs
about as much as ``F.cross_entropy``.

Mixed precision: the weights ``w`` reach ``1/q(a) = 2**24`` (the floor of
``q``), and the gradient of one logit ``loss_weight * w r / N``. In float16
(max 65504) times ``GradScaler``'s initial loss scale 2**16 that is ``inf``
for any batch of fewer than ~1.7e7 * loss_weight pixels. With float16
logits the weights are therefore capped at :data:`FP16_MAX_WEIGHT`
(``max_weight='auto'``); float32 and bfloat16 (float32's range) are left
exact. See ``docs/method.md``, "Mixed precision".
"""
import logging
from typing import Dict, Optional, Tuple, Union

import torch
from mmengine.logging import print_log
from mmseg.registry import MODELS
from torch import Tensor, nn

from ..advantage import global_sums
from ..policy import PixelPolicy
from .utils import (_PrecomputedGradient, check_choice, check_loss_args,
                    collapse_weights)

BASELINES = ('none', 'mean', 'loo', 'syncan')

# Cap of the importance weights w and rho when the logits are float16
# (max_weight='auto'): it biases only actions drawn with probability below
# 1/1024, and bounds the gradient of a logit by 1024 times the largest one
# of cross-entropy with the same loss weight (rewards in [0, 1]), finite
# in float16 at loss scales up to 65504 N / (1024 * loss_weight), 2**22 for
# one 256x256 image.
FP16_MAX_WEIGHT = 1024.0

__all__ = ['PixelRewardLoss', 'collapse_weights']


@MODELS.register_module()
class PixelRewardLoss(nn.Module):
    """Policy-gradient loss for per-pixel rewards.

    With the defaults (``iw_power=1``, on-policy sampling) and the reward
    ``PixelMatchReward(correct=1, wrong=0)`` its expected gradient is the
    gradient of mmseg's ``CrossEntropyLoss`` (same pixel averaging).

    Args:
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        baseline (str): Baseline ``b`` of the importance-weighted rewards
            ``w r`` (subtracted as ``b * rho``, see the module docstring):

            - ``'none'``: no baseline.
            - ``'mean'``: their mean over the valid pixels and samples of the
              global batch (all-reduced over ranks; self-normalized
              ``sum w r / sum rho`` off-policy). Default.
            - ``'loo'``: per pixel, the mean of the other K-1 samples
              (leave-one-out; needs ``num_samples >= 2`` independent
              samples).
            - ``'syncan'``: SyncAN, the ``'mean'`` advantages divided by the
              global std of ``w r`` (+ ``eps``). Unbiased in direction; the
              step size then scales with 1/std.
        iw_power (float): Exponent ``p`` of the importance weight
            ``pi(a)**(1-p) / q(a)``: 1 gives the cross-entropy gradient in
            expectation, 0 plain REINFORCE (gradient of the expected
            reward). Defaults to 1.0.
        clip_weight (float, optional): Clip ``pi(a)**(-p)``, the weight
            that turns REINFORCE into cross-entropy, at this value (lower
            variance, biased towards REINFORCE for low-probability
            classes; the prototype used 10). Defaults to None.
        max_weight (float | str | None): Cap on the importance weights
            ``w`` and ``rho`` (after ``clip_weight``). ``'auto'``
            (default): :data:`FP16_MAX_WEIGHT` (1024) when the logits are
            float16 (mixed precision), announced once in the log, and no
            cap for float32 or bfloat16 logits, whose results are
            unchanged. On-policy the cap bounds the advantages by
            ``1024 (r_max - r_min)`` (SyncAN's are z-scores, at most
            ``sqrt(K N)``) and the gradient of a logit by
            ``1024 * loss_weight * (r_max - r_min) / N``, which float16
            holds at loss scales up to ``65504 N / (1024 * loss_weight *
            (r_max - r_min))``; uncapped, one rewarded action drawn with
            ``q(a) = 2**-24`` is ``inf`` at the loss scale 2**16 for any
            batch of fewer than ~1.7e7 * loss_weight pixels. Like
            ``clip_weight`` it biases only actions drawn with probability
            below the inverse cap, towards REINFORCE; the arg-max of the
            optimum is unchanged. None: no cap; a number: that cap, for
            every dtype. Defaults to 'auto'.
        entropy_weight (float): Weight of an entropy bonus (mean policy
            entropy over the same pixels), added to the gradient in closed
            form. Defaults to 0.0.
        avg_non_ignore (bool): Average over valid pixels only; otherwise
            over all pixels, as mmseg's ``CrossEntropyLoss`` does by
            default. Defaults to False.
        eps (float): Added to the std in SyncAN. Defaults to 1e-6.
        loss_name (str): Name of the loss item; must start with ``loss_``
            to be back-propagated. Defaults to 'loss_pixel_reward'.
    """
    level = 'pixel'
    min_samples = 1

    def __init__(self,
                 loss_weight: float = 1.0,
                 baseline: str = 'mean',
                 iw_power: float = 1.0,
                 clip_weight: Optional[float] = None,
                 max_weight: Union[float, str, None] = 'auto',
                 entropy_weight: float = 0.0,
                 avg_non_ignore: bool = False,
                 eps: float = 1e-6,
                 loss_name: str = 'loss_pixel_reward') -> None:
        super().__init__()
        check_choice('baseline', baseline, BASELINES)
        if not 0.0 <= iw_power <= 1.0:
            raise ValueError(f'iw_power must be in [0, 1], got {iw_power}')
        if clip_weight is not None and clip_weight <= 0:
            raise ValueError(f'clip_weight must be > 0, got {clip_weight}')
        if not (max_weight is None or max_weight == 'auto' or
                (isinstance(max_weight, (int, float))
                 and not isinstance(max_weight, bool) and max_weight > 0)):
            raise ValueError("max_weight must be 'auto', None or a number "
                             f'> 0, got {max_weight!r}')
        check_loss_args(loss_name)
        self.loss_weight = loss_weight
        self.baseline = baseline
        self.iw_power = float(iw_power)
        self.clip_weight = clip_weight
        self.max_weight = max_weight if max_weight in (None, 'auto') \
            else float(max_weight)
        self._announced_cap = False
        self.entropy_weight = entropy_weight
        self.avg_non_ignore = avg_non_ignore
        self.eps = eps
        self._loss_name = loss_name

    def weight_cap(self, policy: PixelPolicy) -> Optional[float]:
        """The cap on the importance weights for this policy's logits (see
        ``max_weight``), or None."""
        if self.max_weight != 'auto':
            return self.max_weight
        if policy.logits.dtype != torch.float16:
            return None
        if not self._announced_cap:
            self._announced_cap = True
            print_log(
                f'{type(self).__name__}: float16 logits (mixed precision): '
                f'importance weights are capped at {FP16_MAX_WEIGHT:g} '
                "(max_weight='auto') so that the logits gradient stays "
                'finite in float16 under loss scaling; this biases only '
                f'actions drawn with probability < 1/{FP16_MAX_WEIGHT:g}. '
                'Set max_weight=None for no cap, or a number (see '
                'docs/method.md, "Mixed precision")',
                logger='current',
                level=logging.WARNING)
        return FP16_MAX_WEIGHT

    def importance_weights(self, policy: PixelPolicy, actions: Tensor
                           ) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """Weights of the sampled actions.

        Returns:
            tuple[Tensor | None, Tensor | None]: ``w``, the weight of the
            reward, ``pi(a)**(1-p) / q(a)`` with ``pi(a)**(-p)`` clipped at
            ``clip_weight`` (None when it is 1), and ``rho = pi(a) / q(a)``,
            the off-policy ratio (None on-policy); both capped at
            :meth:`weight_cap`.
        """
        if policy.on_policy:
            if self.iw_power == 0.0 and self.clip_weight is None:
                return None, None
            pi = q = policy.sampling_prob(actions)
        else:
            pi = policy.prob(actions)
            q = policy.sampling_prob(actions)
        # numerator pi^(1-p), with pi^(-p) clipped at c: min(pi^(1-p), c pi)
        if self.iw_power == 1.0:
            if self.clip_weight is None:
                w = q.reciprocal()
            else:
                w = (pi * self.clip_weight).clamp_(max=1.0).div_(q)
        else:
            num = pi.pow(1.0 - self.iw_power)
            if self.clip_weight is not None:
                num = torch.minimum(num, pi * self.clip_weight)
            w = num.div_(q)
        rho = None if policy.on_policy else pi / q
        cap = self.weight_cap(policy)
        if cap is not None:
            w = w.clamp_(max=cap)
            rho = None if rho is None else rho.clamp_(max=cap)
        return w, rho

    def advantages(self, policy: PixelPolicy, actions: Tensor,
                   rewards: Tensor, valid: Tensor) -> Tuple[Tensor, Tensor]:
        """Advantages ``A = w r - b rho`` (0 where invalid) and their std.

        The baseline ``b`` estimates ``E_pi[r pi^-p]`` from the batch by
        self-normalized importance sampling, ``sum w r / sum rho``
        (the plain mean on-policy), and is multiplied by ``rho`` so that it
        keeps a zero-mean score under the sampling policy.

        Returns:
            tuple[Tensor, Tensor]: Advantages (K, B, H, W) and their std
            over the valid entries (for logging).
        """
        K = actions.shape[0]
        w, rho = self.importance_weights(policy, actions)
        invalid = ~valid.expand_as(rewards)
        returns = rewards.float() if w is None else rewards * w
        returns = returns.masked_fill(invalid, 0.0)
        if self.baseline == 'loo':
            if K < 2:
                raise ValueError('baseline="loo" needs num_samples >= 2')
            # baseline of sample k from the other K - 1 samples of its pixel
            others = returns.sum(0, keepdim=True) - returns
            if rho is None:
                adv = returns - others / (K - 1)
            else:
                other_rho = rho.sum(0, keepdim=True) - rho
                adv = returns - rho * others / other_rho.clamp(min=1e-12)
        elif self.baseline == 'none':
            adv = returns
        else:
            sums = [returns, returns.square()]
            if rho is not None:
                sums.append(rho.masked_fill(invalid, 0.0))
            stats = global_sums(sums, valid, K)
            total, total_sq, count = stats[0], stats[1], stats[-1]
            total_rho = count if rho is None else stats[2]
            b = (total / total_rho.clamp(min=1e-12)).to(returns.dtype)
            adv = returns - (b if rho is None else rho * b)
            if self.baseline == 'syncan':
                count = count.clamp(min=1.0)
                var = total_sq / count - (total / count).square()
                std = var.clamp(min=0.0).sqrt().to(returns.dtype)
                adv = adv.div_(std + self.eps)
        adv = adv.masked_fill_(invalid, 0.0) if adv is not returns else adv
        # local std over the valid entries (adv is 0 elsewhere), for the log
        num = (valid.sum() * K).clamp(min=1).double()
        adv_mean = adv.sum(dtype=torch.float64) / num
        adv_std = (adv.square().sum(dtype=torch.float64) / num -
                   adv_mean.square()).clamp(min=0.0).sqrt()
        return adv, adv_std

    def forward(self, policy: PixelPolicy, actions: Tensor, rewards: Tensor,
                valid: Tensor) -> Dict[str, Tensor]:
        """Compute the loss (with its gradient) and its statistics.

        Args:
            policy (:obj:`PixelPolicy`): The policy the actions were drawn
                from; its logits (B, C, H, W) receive the gradient.
            actions (Tensor): Actions (K, B, H, W), long.
            rewards (Tensor): Pixel rewards (K, B, H, W).
            valid (Tensor): Pixels with a reward (B, H, W), bool. Others get
                no gradient.

        Returns:
            dict[str, Tensor]: ``{loss_name: loss, 'adv_std': std}``. The
            loss value is the surrogate ``-1/N sum A log pi(a)`` (minus the
            entropy bonus); only its gradient is meaningful.
        """
        if rewards.dim() != 4 or rewards.shape != actions.shape:
            raise ValueError('PixelRewardLoss needs pixel rewards shaped '
                             f'like the actions {tuple(actions.shape)}, got '
                             f'{tuple(rewards.shape)}')
        logits = policy.logits
        K, B, H, W = actions.shape
        with torch.no_grad():
            adv, adv_std = self.advantages(policy, actions, rewards, valid)

            if self.avg_non_ignore:
                num = valid.sum().clamp_(min=1).float()
            else:
                num = torch.full((), float(valid.numel()), device=adv.device)
            scale = self.loss_weight / num
            probs = policy.probs
            # d/dz of -1/(NK) sum_k A_k log pi(a_k):
            # (pi * mean_k A_k - 1/K sum_k A_k onehot(a_k)) / N
            grad = probs * (adv.sum(0) * (scale / K)).unsqueeze(1)
            grad.scatter_add_(1, actions.transpose(0, 1),
                              adv.transpose(0, 1) * (-scale / K))
            log_pi_a = policy.prob(actions).clamp(
                min=torch.finfo(torch.float32).tiny).log_()
            value = -(adv * log_pi_a).sum() * (scale / K)
            if self.entropy_weight > 0:
                # d/dz of -beta/N sum_valid H = beta/N * pi * (log pi + H)
                plogp = probs * probs.clamp(min=1e-30).log()
                entropy = -plogp.sum(1)
                ent_scale = valid * (self.entropy_weight * scale)
                ent_scale = ent_scale.unsqueeze(1)
                entropy = entropy.unsqueeze(1)
                grad += plogp.add_(probs * entropy).mul_(ent_scale)
                value = value - (entropy * ent_scale).sum()
        loss = _PrecomputedGradient.apply(logits, value, grad)
        return {self.loss_name: loss, 'adv_std': adv_std.float()}

    @property
    def loss_name(self) -> str:
        """Name of the loss item in the log; starts with ``loss_``."""
        return self._loss_name

    def extra_repr(self) -> str:
        return (f'baseline={self.baseline!r}, iw_power={self.iw_power}, '
                f'clip_weight={self.clip_weight}, '
                f'max_weight={self.max_weight!r}, '
                f'entropy_weight={self.entropy_weight}, '
                f'loss_weight={self.loss_weight}')

