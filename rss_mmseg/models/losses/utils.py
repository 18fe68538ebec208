"""Closed-form policy-gradient machinery shared by the RSS losses.

Every RSS surrogate is linear in the log-probabilities of the sampled
actions, ``-sum_k sum_p A_k,p log pi(a_k,p)``, so its K samples collapse into
one weight per pixel (or cell) and class, ``W[c] = sum_k A_k 1{a_k = c}``, and
its gradient w.r.t. the logits is ``pi * sum_c W - W``. Forming that gradient
up front and attaching it with :class:`_PrecomputedGradient` makes the
backward pass one multiplication, whatever K, and saves no (K, ...) tensor.
"""
import math
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from ..policy import MIN_SAMPLING_PROB, PixelPolicy


class _PrecomputedGradient(torch.autograd.Function):
    """Return ``value`` with ``d value / d logits = grad``.

    ``grad`` is float32 (formed from the policy's float32 probabilities).
    Under mixed precision the logits are float16 or bfloat16: backward
    multiplies ``grad`` by the incoming gradient (the loss scale of
    ``GradScaler`` times any loss weights) in float32 and casts the product
    once to the logits' dtype, so the hand-off is exact up to one rounding.
    A product beyond the dtype's range becomes ``inf`` on purpose, not a
    saturated value: ``GradScaler`` then skips the step and lowers its
    scale, whereas a silently saturated gradient would take a step whose
    direction depends on the current scale. The losses keep the product
    in range by construction (bounded advantages, importance weights
    capped under float16, pooling in float32); see ``docs/method.md``,
    "Mixed precision".
    """

    @staticmethod
    def forward(ctx, logits: Tensor, value: Tensor, grad: Tensor) -> Tensor:
        ctx.save_for_backward(grad)
        ctx.dtype = logits.dtype
        return value.detach().clone()

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> Tuple[Tensor, None, None]:
        grad, = ctx.saved_tensors
        return (grad * grad_output).to(ctx.dtype), None, None


def collapse_weights(actions: Tensor, advantages: Tensor,
                     num_classes: int) -> Tensor:
    """Per-class weights ``W[b, c] = 1/K sum_k A_k 1{a_k = c}``.

    Args:
        actions (Tensor): Actions (K, B, H, W), long.
        advantages (Tensor): Advantages (K, B, H, W) (may be an expanded
            view, e.g. one value per sample and image broadcast over H, W).
        num_classes (int): Number of classes C.

    Returns:
        Tensor: Weights (B, C, H, W); ``-(W * log_softmax(z)).sum()`` has the
        same gradient as ``-1/K sum_k (A_k * log pi(a_k)).sum()``.
    """
    K, B, H, W = actions.shape
    weights = advantages.new_zeros((B, num_classes, H, W))
    weights.scatter_add_(1, actions.transpose(0, 1),
                         advantages.transpose(0, 1))
    return weights.div_(K)


def check_choice(name: str, value, choices) -> None:
    """Refuse an option ``value`` outside ``choices``, naming both."""
    if value not in choices:
        raise ValueError(f'{name} must be one of {choices}, got {value!r}')


def check_loss_args(loss_name: str, eps: Optional[float] = None) -> None:
    """Refuse a ``loss_name`` mmseg would not back-propagate (it sums only
    the items whose name starts with ``loss_``) and a non-positive ``eps``."""
    if eps is not None and eps <= 0:
        raise ValueError(f'eps must be > 0, got {eps}')
    if not loss_name.startswith('loss_'):
        raise ValueError('loss_name must start with "loss_" to be '
                         f'back-propagated, got {loss_name!r}')


def check_uniform_pull(
        weight: float,
        floor: Optional[float]) -> Tuple[float, Optional[float]]:
    """Validate the ``uniform_weight`` and ``uniform_floor`` of a loss."""
    if weight < 0:
        raise ValueError(f'uniform_weight must be >= 0, got {weight}')
    if floor is not None and not 0.0 < floor < 1.0:
        raise ValueError('uniform_floor is a class probability and must be '
                         f'in (0, 1), got {floor}')
    return float(weight), floor


def uniform_pull(probs: Tensor,
                 log_probs: Tensor,
                 floor: Optional[float] = None) -> Tuple[Tensor, Tensor]:
    """Gradient and value per cell of a pull of the policy toward uniform.

    Without ``floor`` the term is ``KL(u || pi) = -mean_c log pi_c - log C``
    with logits gradient ``pi - 1/C``. With ``floor`` only the classes below
    it are pulled: ``1/C sum_c relu(log floor - log pi_c)``, gradient
    ``(pi_j n - m_j) / C`` with ``m_c = 1{pi_c < floor}``, ``n = sum_c m_c``:
    a barrier that keeps every class sampled at about ``floor`` and leaves
    the policy free above it.

    Why: image rewards push small classes (never the majority of a coarse
    cell, absent from most images) toward probability 0 early, and the
    entropy bonus cannot hold them, its gradient ``pi (log pi + H)``
    vanishing with ``pi``; the pull's does not, so they stay sampled and
    can still be learned on finer grids. The full KL also flattens the
    sharp classes, more so as the grid gets finer and each cell's share of
    the reward shrinks; the floor avoids that.

    Args:
        probs (Tensor): Class probabilities (B, C, h, w).
        log_probs (Tensor): Their logarithms.
        floor (float, optional): The probability floor. Defaults to None.

    Returns:
        tuple[Tensor, Tensor]: The logits gradient (B, C, h, w) and the
        value per cell (B, 1, h, w).
    """
    C = probs.shape[1]
    if floor is None:
        value = -log_probs.mean(1, keepdim=True) - math.log(C)
        return probs - 1.0 / C, value
    below = (probs < floor).to(probs.dtype)
    count = below.sum(1, keepdim=True)
    value = (below * (math.log(floor) - log_probs)).sum(1, keepdim=True) / C
    return (probs * count - below) / C, value


def image_policy_gradient(policy: PixelPolicy,
                          actions: Tensor,
                          sample_weights: Tensor,
                          scale: Union[float, Tensor],
                          entropy_scale: Optional[Tensor] = None,
                          uniform_scale: Optional[Tensor] = None,
                          uniform_floor: Optional[float] = None,
                          natural_floor: Optional[float] = None) -> Tensor:
    """Loss for ``-scale sum_{k,b} w_kb sum_cells log pi(a_kb)``.

    The surrogate of the image-level losses: one scalar weight per sample
    and image (its advantage, or its share of the pair comparisons) on the
    summed log-probabilities of the sample's cell actions. The K samples
    collapse into ``W = sum_k w_k onehot(a_k)`` (B, C, h, w) with one
    scatter, and the logits gradient ``scale * (pi * sum_k w_k - W)`` is
    attached in closed form: backward cost and saved memory do not depend on
    K.

    Args:
        policy (:obj:`PixelPolicy`): Policy over the cell logits
            (B, C, h, w); they receive the gradient.
        actions (Tensor): Cell actions (K, B, h, w), long.
        sample_weights (Tensor): Weights ``w`` (K, B), zero for samples that
            must not learn (invalid images).
        scale (float | Tensor): Factor of the surrogate (loss weight over
            the normalizer; a scalar tensor avoids a device sync).
        entropy_scale (Tensor, optional): Per-image factor ``beta_b`` (B,)
            of an entropy bonus ``-sum_b beta_b sum_cells H(pi)``, whose
            gradient ``beta_b pi (log pi + H)`` is added in closed form.
            Defaults to None (no bonus).
        uniform_scale (Tensor, optional): Per-image factor ``gamma_b`` (B,)
            of ``sum_b gamma_b sum_cells KL(u || pi)``, u the uniform
            distribution, whose gradient ``gamma_b (pi - 1/C)`` is added in
            closed form. Defaults to None (no term).
        uniform_floor (float, optional): Pull only the classes whose
            probability is below this floor (see :func:`uniform_pull`).
            Defaults to None (every class, the full KL).
        natural_floor (float, optional): Take the natural-gradient step
            instead: each class's credit ``W_c`` divided by its probability
            ``max(pi_c, natural_floor)``, minus the mean over the classes,
            so a class's logit moves by its estimated advantage however
            unlikely it is (the plain gradient's move is proportional to
            ``pi_c``). Defaults to None (the plain gradient).

    Off-policy (the head samples from ``q != pi``: ``temperature``,
    ``uniform_mix``) each cell's credit is importance weighted per cell,
    ``W_c pi_c / q_c``, for both steps: unbiased for a reward whose
    advantage is a sum over cells (the product of the ratios over a whole
    sample would be exact but of unbounded variance). Exploration mixed
    into ``q`` then changes which classes get sampled (the variance of
    their credit), not what the step estimates.

    Returns:
        Tensor: Scalar loss whose value is the surrogate (only its gradient
        is meaningful) and whose gradient flows into ``policy.logits``.
    """
    K, B, h, w = actions.shape
    with torch.no_grad():
        probs = policy.probs
        log_probs = policy.log_probs
        sample_weights = sample_weights.to(probs.dtype)
        src = sample_weights.view(K, B, 1, 1).expand(K, B, h, w)
        weights = collapse_weights(actions, src, policy.num_classes)
        weights.mul_(K * scale)  # sum_k w_k onehot(a_k), times scale
        # d/dz of -scale sum_k w_k log pi(a_k): scale (pi sum_k w_k - W)
        if policy.on_policy:
            total = (sample_weights.sum(0) * scale).view(B, 1, 1, 1)
        else:  # per-cell importance ratio pi / q
            sampling = policy.sampling_probs.clamp(min=MIN_SAMPLING_PROB)
            weights.mul_(probs / sampling)
            total = weights.sum(1, keepdim=True)
        value = -(weights * log_probs).sum()
        if natural_floor is None:
            grad = probs * total - weights
        else:
            # -(A_c - mean_c A_c), A_c = W_c / pi_c estimating the class's
            # advantage (importance weighted over the K samples)
            grad = weights.div_(probs.clamp(min=natural_floor)).neg_()
            grad -= grad.mean(1, keepdim=True)
        if entropy_scale is not None:
            # d/dz of -beta sum H = beta * pi * (log pi + H)
            plogp = probs * log_probs
            entropy = -plogp.sum(1, keepdim=True)
            beta = entropy_scale.to(probs.dtype).view(B, 1, 1, 1)
            grad += plogp.add_(probs * entropy).mul_(beta)
            value = value - (entropy * beta).sum()
        if uniform_scale is not None:
            gamma = uniform_scale.to(probs.dtype).view(B, 1, 1, 1)
            grad_u, value_u = uniform_pull(probs, log_probs, uniform_floor)
            grad += grad_u.mul_(gamma)
            value = value + (value_u * gamma).sum()
    return _PrecomputedGradient.apply(policy.logits, value, grad)
