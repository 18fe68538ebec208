"""Entropy bonus of the image-level losses: a fixed weight, or one that
holds the policy's entropy at a target.

Image-level rewards favour the majority class everywhere long before the
network can tell the other classes apart, and maximizing an expected reward
drives a softmax policy to a deterministic one: the policy collapses
(measured on the synthetic set: all-background within 30-50 iterations,
with or without advantage normalization). A fixed bonus is a knife edge:
weights of 0.01-0.05 still collapsed there and 0.2 kept the policy uniform
(it learned nothing). With ``target`` the weight adapts instead, as the
temperature of soft actor-critic does: after every step
``log w += rate * (target - H / log C)``, where ``H`` is the mean entropy of
the cell policy over the valid images of the whole distributed batch, so
the policy keeps exploring at ``target`` times the maximum entropy
``log C`` and the weight finds the size the reward signal needs.
"""
import math
from typing import Dict, Optional

import torch
from torch import Tensor, nn

from ..advantage import global_sums
from ..policy import PixelPolicy

__all__ = ['EntropyControl']


class EntropyControl(nn.Module):
    """The weight of an entropy bonus, fixed or adapted to a target.

    Args:
        weight (float): The weight (with ``target``: its initial value).
        target (float, optional): Target mean entropy of the cell policy
            as a fraction of ``log C`` (0 < target < 1). None keeps
            ``weight`` fixed. Defaults to None.
        rate (float): Step of ``log weight`` per iteration and unit of
            entropy error. Defaults to 0.05.
        min_weight (float): Lower bound of the adapted weight.
            Defaults to 1e-4.
        max_weight (float): Upper bound of the adapted weight.
            Defaults to 1.0.

    With a target the weight is a buffer of the state dict, so ``--resume``
    continues with the adapted value.
    """

    def __init__(self,
                 weight: float = 0.0,
                 target: Optional[float] = None,
                 rate: float = 0.05,
                 min_weight: float = 1e-4,
                 max_weight: float = 1.0) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f'entropy_weight must be >= 0, got {weight}')
        if target is not None:
            if not 0.0 < target < 1.0:
                raise ValueError('entropy_target is a fraction of the '
                                 'maximum entropy log(num_classes) and must '
                                 f'be in (0, 1), got {target}')
            if rate <= 0:
                raise ValueError(f'entropy_rate must be > 0, got {rate}')
            if not 0.0 < min_weight <= max_weight:
                raise ValueError('need 0 < entropy min_weight <= max_weight, '
                                 f'got {min_weight}, {max_weight}')
            weight = min(max(weight, min_weight), max_weight)
        self.target = target
        # whether the bonus is on (a positive or an adapted weight); fixed
        # at build, so the loss never reads the buffer back from the device
        self.active = target is not None or weight > 0
        self.rate = rate
        self.min_weight = min_weight
        self.max_weight = max_weight
        self.register_buffer(
            'weight',
            torch.tensor(float(weight), dtype=torch.float64),
            persistent=target is not None)

    @torch.no_grad()
    def set_weight(self, weight: float) -> None:
        """Fix the bonus weight (e.g. per PSR scale); no adaptive target."""
        if self.target is not None:
            raise ValueError('set_weight fixes the entropy bonus, but it '
                             f'adapts to entropy_target={self.target}')
        if not weight >= 0:
            raise ValueError(f'entropy_weight must be >= 0, got {weight}')
        self.weight.fill_(float(weight))
        self.active = weight > 0

    @torch.no_grad()
    def mean_entropy(self, policy: PixelPolicy, valid: Tensor) -> Tensor:
        """Mean entropy of the cell policy over the valid images of the
        global batch (all-reduced: a collective, call it on every rank)."""
        entropy = policy.entropy().flatten(1).mean(1)  # (B,)
        total, count = global_sums([entropy.double() * valid],
                                   valid).unbind()
        return total / count.clamp(min=1.0)

    @torch.no_grad()
    def step(self, policy: PixelPolicy, valid: Tensor) -> Dict[str, Tensor]:
        """Adapt the weight to this step's entropy (after the step used it).

        Returns:
            dict[str, Tensor]: With a target, the logged ``cell_entropy``
            (mean over the global batch) and the new ``entropy_coef``;
            without one, nothing.
        """
        if self.target is None:
            return {}
        entropy = self.mean_entropy(policy, valid)
        error = self.target - entropy / math.log(max(policy.num_classes, 2))
        log_weight = self.weight.log() + self.rate * error
        self.weight.copy_(
            log_weight.exp().clamp(self.min_weight, self.max_weight))
        return dict(
            cell_entropy=entropy.float(),
            entropy_coef=self.weight.float().clone())

    def extra_repr(self) -> str:
        if self.target is None:
            return f'weight={float(self.weight)}'
        return (f'target={self.target}, rate={self.rate}, '
                f'weight={float(self.weight):.4g}')
