"""Checks on what a reward returns, so a bad scorer fails loudly.

A reward is user code (or a remote scorer behind it): a NaN, a wrong shape
or a value outside the declared range would otherwise flow into the
advantages and then silently into the weights.
"""
from typing import Tuple

import torch
from torch import Tensor


class RewardError(RuntimeError):
    """A reward raised or returned something unusable."""


def check_reward_output(reward: object, out: object, actions: Tensor,
                        level: str) -> Tuple[Tensor, Tensor]:
    """Validate ``(rewards, valid)`` returned by ``reward`` for ``actions``.

    Args:
        reward (object): The reward (named in errors by its ``repr``).
        out (object): What it returned.
        actions (Tensor): The action maps it scored, (K, B, H, W).
        level (str): 'pixel' (rewards (K, B, H, W), valid (B, H, W)) or
            'image' (rewards (K, B), valid (B,)).

    Returns:
        tuple[Tensor, Tensor]: The rewards and the valid mask.

    Raises:
        RewardError: Naming the reward and what is wrong.
    """
    K, B = actions.shape[:2]
    if level == 'pixel':
        want_r, want_v = tuple(actions.shape), tuple(actions.shape[1:])
    else:
        want_r, want_v = (K, B), (B, )
    if not (isinstance(out, tuple) and len(out) == 2):
        raise RewardError(f'{reward!r} must return (rewards, valid), got '
                          f'{type(out).__name__}')
    rewards, valid = out
    if not isinstance(rewards, Tensor) or not isinstance(valid, Tensor):
        raise RewardError(f'{reward!r} must return tensors, got '
                          f'({type(rewards).__name__}, '
                          f'{type(valid).__name__})')
    if tuple(rewards.shape) != want_r or tuple(valid.shape) != want_v:
        raise RewardError(
            f'{reward!r} returned rewards {tuple(rewards.shape)} and valid '
            f'{tuple(valid.shape)}; {level}-level rewards for K={K} samples '
            f'of B={B} images must be {want_r} and {want_v}')
    if not rewards.is_floating_point():
        raise RewardError(f'{reward!r} returned rewards of dtype '
                          f'{rewards.dtype}; a floating dtype is required')
    if valid.dtype != torch.bool:
        raise RewardError(f'{reward!r} returned a valid mask of dtype '
                          f'{valid.dtype}; torch.bool is required')
    scored = rewards[:, valid] if level == 'image' else rewards[
        valid.expand_as(rewards)]
    finite = torch.isfinite(scored)
    if not bool(finite.all()):
        bad = scored[~finite][0].item()
        raise RewardError(f'{reward!r} returned a non-finite reward ({bad}) '
                          f'for {int((~finite).sum())} of {scored.numel()} '
                          'valid entries')
    value_range = getattr(reward, 'value_range', None)
    if value_range is not None and scored.numel():
        low, high = value_range
        lo, hi = scored.min().item(), scored.max().item()
        tol = 1e-6 * max(1.0, abs(low), abs(high))
        if lo < low - tol or hi > high + tol:
            raise RewardError(
                f'{reward!r} returned rewards in [{lo:.6g}, {hi:.6g}], '
                f'outside its declared value_range {tuple(value_range)}')
    return rewards.float(), valid
