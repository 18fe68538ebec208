"""Checks on what a reward returns and is given, so a bad scorer fails loudly.

A reward is user code (or a remote scorer behind it): a NaN, a wrong shape
or a value outside the declared range would otherwise flow into the
advantages and then silently into the weights.

Shapes and dtypes are metadata and are checked at once. Values are not:
reading one on the host (``.item()``, ``bool(tensor)``, a boolean mask)
makes the host wait until the accelerator has run everything queued before
it, a stall per training step. So inside an
:class:`~rss_mmseg.models.heads.RSSHead` the values are checked on the
device: every problem is added to a :class:`RewardChecks` record (in how
many calls it occurred, the first step, the extreme values seen) and the
call is flagged, so the head can make the batch inert (zero rewards, no
valid entry: no gradient) without knowing yet; the host reads the record
once in a while with one sync (:meth:`RewardChecks.collect`) and raises
then, naming the reward, the problem and the first step it occurred at.

Outside a head (no active record, e.g. a reward called by hand) the same
checks read their record at once and raise immediately.
"""
import contextlib
import contextvars
import math
from typing import (Callable, Dict, Hashable, Iterator, List, NamedTuple,
                    Optional, Tuple)

import torch
from mmengine.dist import all_reduce, is_distributed
from torch import Tensor

__all__ = [
    'RewardError', 'RewardChecks', 'Problem', 'check_reward_output',
    'check_reward_values', 'deferred_checks', 'active_checks', 'checking'
]

# What a record tallies: the reward's output, then what it was given.
KINDS = ('non_finite', 'range', 'reference', 'action')
# Kinds about the data a reward scored rather than the rewards it returned.
DATA_KINDS = ('reference', 'action')


class RewardError(RuntimeError):
    """A reward raised or returned something unusable."""


class Problem(NamedTuple):
    """One kind of problem read from a :class:`RewardChecks` record."""
    kind: str  # one of KINDS
    calls: int  # how many calls it occurred in since the last collect
    first: int  # the step of the first of them
    text: str  # what is wrong


class Report(NamedTuple):
    """What :meth:`RewardChecks.collect` read."""
    bad_calls: int  # calls with any problem since the last collect
    problems: List[Problem]  # ordered by first step


Describe = Callable[[float, float], str]


def _float_dtype(device: torch.device) -> torch.dtype:
    # exact counts and steps up to 2**53; MPS has no float64
    return torch.float32 if device.type == 'mps' else torch.float64


class RewardChecks:
    """A device-side record of bad rewards and bad reward inputs.

    Checks call :meth:`note` with 0-dim device tensors (a flag and the
    lowest and highest values checked); nothing is read on the host until
    :meth:`collect`, which reads the whole record with one sync. Each
    distinct check (``key``: a kind and, e.g., the reward it checks) has a
    slot of its own: in how many calls it failed, the first step it failed
    at, and the extreme values seen. The caller brackets each reward call
    with :meth:`begin_call` / :meth:`end_call`; :meth:`end_call` returns
    the call's flag (a 0-dim bool tensor) so the caller can make a bad
    call inert on the device.

    Args:
        num_classes (int, optional): The number of classes of the policy
            whose actions are scored; rewards without a ``num_classes`` of
            their own use it instead of inferring it from the data (which
            would read values on the host). Defaults to None.
    """

    def __init__(self, num_classes: Optional[int] = None) -> None:
        self.num_classes = num_classes
        self.step = 0  # the step number recorded with problems
        self._slots: Dict[Hashable, int] = dict()
        self._kinds: List[str] = []
        self._describe: List[Describe] = []
        self._bad_calls: Optional[Tensor] = None  # 0-dim
        self._calls: Optional[Tensor] = None  # (slots,) failed calls
        self._mins: Optional[Tensor] = None  # (slots, 3): first, low, -high
        self._call_bad: Optional[Tensor] = None

    def _allocate(self, device: torch.device) -> None:
        if self._bad_calls is not None and self._bad_calls.device == device:
            return
        dtype = _float_dtype(device)
        self._bad_calls = torch.zeros((), dtype=dtype, device=device)
        self._calls = torch.zeros(
            len(self._kinds), dtype=dtype, device=device)
        self._mins = torch.full((len(self._kinds), 3),
                                math.inf,
                                dtype=dtype,
                                device=device)

    def _slot(self, key: Hashable, kind: str) -> int:
        index = self._slots.get(key)
        if index is None:
            index = self._slots[key] = len(self._kinds)
            self._kinds.append(kind)
            self._describe.append(None)
            self._calls = torch.cat([self._calls, self._calls.new_zeros(1)])
            self._mins = torch.cat(
                [self._mins, self._mins.new_full((1, 3), math.inf)])
        return index

    def begin_call(self, step: int, device: torch.device) -> None:
        """Start recording one reward call made at ``step``."""
        self._allocate(device)
        self.step = int(step)
        self._call_bad = None

    def note(self,
             kind: str,
             bad,
             low,
             high,
             describe: Describe,
             key: Optional[Hashable] = None) -> None:
        """Add one check's outcome; no sync.

        Args:
            kind (str): One of :data:`KINDS`.
            bad (Tensor | bool): Whether the check failed (a 0-dim bool
                tensor, or a Python bool where it is known on the host).
            low (Tensor | float): The lowest value checked (0-dim).
            high (Tensor | float): The highest value checked (0-dim).
            describe (Callable[[float, float], str]): Builds the message
                from the lowest and highest values this check saw over the
                calls since the last :meth:`collect`.
            key (Hashable, optional): Which check this is (its slot).
                Defaults to ``kind``.
        """
        if kind not in KINDS:
            raise ValueError(f'kind must be one of {KINDS}, got {kind!r}')
        if self._bad_calls is None:
            like = next((t for t in (bad, low, high)
                         if isinstance(t, Tensor)), None)
            self._allocate(torch.device('cpu') if like is None else
                           like.device)
        index = self._slot(kind if key is None else key, kind)
        calls, mins = self._calls, self._mins
        if isinstance(bad, Tensor):
            bad = bad.to(calls.device).reshape(())
        else:
            bad = torch.full((), bool(bad), device=calls.device)
        low, high = (
            v.to(device=calls.device, dtype=calls.dtype).reshape(())
            if isinstance(v, Tensor) else calls.new_full((), float(v))
            for v in (low, high))
        first = calls.new_full((), math.inf).masked_fill_(bad, self.step)
        calls.select(0, index).add_(bad)
        mins[index] = torch.minimum(mins[index],
                                    torch.stack([first, low, high.neg()]))
        self._describe[index] = describe
        self._call_bad = bad if self._call_bad is None \
            else self._call_bad | bad

    def end_call(self) -> Optional[Tensor]:
        """Finish the call: its flag (0-dim bool tensor), or None when no
        check was noted."""
        bad, self._call_bad = self._call_bad, None
        if bad is not None:
            self._bad_calls.add_(bad)
        return bad

    def collect(self) -> Optional[Report]:
        """Read the record (one host-device sync) and reset it.

        Under distributed training the records of all ranks are reduced
        first, so every rank reads the same report; every rank must call
        it at the same point, after the same reward calls.

        Returns:
            Report | None: The problems since the last collect, or None
            when there were none (or nothing was noted).
        """
        if self._bad_calls is None:
            return None
        sums = torch.cat([self._bad_calls.view(1), self._calls])
        mins = self._mins
        if is_distributed():
            all_reduce(sums, op='sum')
            all_reduce(mins, op='min')
        values = torch.cat([sums, mins.reshape(-1)]).tolist()  # the sync
        self._bad_calls.zero_()
        self._calls.zero_()
        mins.fill_(math.inf)
        slots = len(self._kinds)
        bad_calls, calls = int(values[0]), values[1:1 + slots]
        rows = values[1 + slots:]
        problems = []
        for index, kind in enumerate(self._kinds):
            if not calls[index]:
                continue
            first, low, neg_high = rows[3 * index:3 * index + 3]
            text = self._describe[index](low, -neg_high)
            problems.append(
                Problem(kind, int(calls[index]), int(first), text))
        if not problems:
            return None
        problems.sort(key=lambda p: p.first)  # stable: slot order on ties
        return Report(bad_calls, problems)

    def raise_problems(self, error: type) -> None:
        """Collect and raise ``error`` with the first problem, if any."""
        report = self.collect()
        if report is not None:
            raise error(report.problems[0].text)


_ACTIVE: contextvars.ContextVar = contextvars.ContextVar(
    'rss_reward_checks', default=None)


@contextlib.contextmanager
def deferred_checks(checks: RewardChecks) -> Iterator[RewardChecks]:
    """Route the value checks of rewards called inside to ``checks``.

    Built-in rewards (and
    :func:`~rss_mmseg.models.rewards.per_image_confusion` or
    :func:`check_reward_output` called by any reward) then record problems
    in it and keep their outputs finite instead of reading values on the
    host.
    """
    token = _ACTIVE.set(checks)
    try:
        yield checks
    finally:
        _ACTIVE.reset(token)


def active_checks() -> Optional[RewardChecks]:
    """The record set by an enclosing :func:`deferred_checks`, or None."""
    return _ACTIVE.get()


@contextlib.contextmanager
def checking(error: type = ValueError) -> Iterator[RewardChecks]:
    """The active record, or a fresh one that is read (one sync) and
    raises ``error`` with the first problem when the block ends."""
    checks = active_checks()
    if checks is not None:
        yield checks
        return
    checks = RewardChecks()
    yield checks
    checks.raise_problems(error)


def _describe_non_finite(name: str) -> Describe:

    def describe(low: float, high: float) -> str:
        found = [
            value for value, present in (
                ('nan', math.isnan(low) or math.isnan(high)),
                ('-inf', low == -math.inf), ('inf', high == math.inf))
            if present
        ]
        return (f'{name} returned non-finite rewards '
                f'({", ".join(found) or "nan"})')

    return describe


def _describe_range(name: str, value_range: Tuple[float, float],
                    tol: float) -> Describe:

    def describe(low: float, high: float) -> str:
        # only the extremes outside the range are real rewards (the
        # invalid entries were replaced by a value inside it)
        found = [f'down to {low:.6g}'] if low < value_range[0] - tol else []
        if high > value_range[1] + tol:
            found.append(f'up to {high:.6g}')
        return (f'{name} returned rewards {" and ".join(found)}, outside '
                f'its declared value_range {tuple(value_range)}')

    return describe


def check_reward_values(reward: object, rewards: Tensor, valid: Tensor,
                        checks: RewardChecks) -> Tensor:
    """Note non-finite and out-of-range valid rewards in ``checks``.

    Two passes over the rewards and no sync: the valid entries (the others
    replaced by a value inside the range) are reduced to their minimum and
    maximum, which are NaN or infinite when any entry is, and outside the
    declared ``value_range`` when any entry is.

    Returns:
        Tensor: The rewards as float32 (unchanged otherwise).
    """
    rewards = rewards.float()
    value_range = getattr(reward, 'value_range', None)
    fill = 0.0 if value_range is None else float(value_range[0])
    low, high = torch.aminmax(torch.where(valid, rewards, fill))
    finite = torch.isfinite(low) & torch.isfinite(high)
    name = repr(reward)
    checks.note('non_finite', ~finite, low, high, _describe_non_finite(name),
                ('non_finite', id(reward)))
    if value_range is not None:
        lo_bound, hi_bound = (float(v) for v in value_range)
        tol = 1e-6 * max(1.0, abs(lo_bound), abs(hi_bound))
        # NaN compares false: a NaN is reported as non-finite only
        outside = (low < lo_bound - tol) | (high > hi_bound + tol)
        checks.note('range', outside & finite, low.where(finite, fill),
                    high.where(finite, fill),
                    _describe_range(name, (lo_bound, hi_bound), tol),
                    ('range', id(reward)))
    return rewards


def check_reward_output(reward: object,
                        out: object,
                        actions: Tensor,
                        level: str,
                        checks: Optional[RewardChecks] = None
                        ) -> Tuple[Tensor, Tensor]:
    """Validate ``(rewards, valid)`` returned by ``reward`` for ``actions``.

    The structure, shapes and dtypes are checked at once. The values
    (non-finite valid entries, valid entries outside the reward's
    ``value_range``) are noted in ``checks`` on the device, without a
    sync: the caller makes the call inert and acts on the record later.
    With ``checks=None`` the active record (:func:`deferred_checks`, e.g.
    a reward that combines others, called by an RSSHead) is used, and
    without one the values are read at once (one sync) and raise here.

    Args:
        reward (object): The reward (named in errors by its ``repr``).
        out (object): What it returned.
        actions (Tensor): The action maps it scored, (K, B, H, W).
        level (str): 'pixel' (rewards (K, B, H, W), valid (B, H, W)) or
            'image' (rewards (K, B), valid (B,)).
        checks (RewardChecks, optional): The record to note the values'
            problems in. Defaults to None (the active record, else check
            them now).

    Returns:
        tuple[Tensor, Tensor]: The rewards (float32) and the valid mask.

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
    if rewards.device != actions.device or valid.device != actions.device:
        raise RewardError(f'{reward!r} returned rewards on {rewards.device} '
                          f'and valid on {valid.device}; both must be on '
                          f'the device of the actions, {actions.device}')
    if checks is None:
        with checking(RewardError) as record:
            rewards = check_reward_values(reward, rewards, valid, record)
    else:
        rewards = check_reward_values(reward, rewards, valid, checks)
    return rewards, valid
