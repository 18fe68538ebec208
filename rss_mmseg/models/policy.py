"""The segmentation network as a per-pixel categorical policy.

Logits ``z`` of shape (B, C, H, W) define the *target* policy
``pi = softmax(z)`` (the one that is trained and whose arg-max is the
prediction). Actions are drawn from a *sampling* (behaviour) policy

    q = (1 - uniform_mix) * softmax(z / temperature) + uniform_mix / C,

which equals ``pi`` with the defaults. Losses correct for ``q != pi`` with the
importance ratio, so temperature and uniform mixing change exploration and
variance, not what the loss optimizes in expectation.

Sampling is inverse-CDF: one uniform per pixel and sample, compared against
the running sum of the class probabilities, one class at a time. On CPU at
(8, 11, 176, 240) it costs about as much as one ``exp`` over the logits
(~6 ms on one thread), against ~90-130 ms for Gumbel-max (C uniforms and two
logarithms per pixel) and ~130-180 ms for ``torch.distributions.Categorical``
over a permuted tensor; see ``tests/models/bench_pixel_loss.py``.
:func:`sample_gumbel_max` is kept as an independent reference for the tests.
"""
from contextlib import contextmanager
from typing import (Callable, Dict, Iterator, Optional, Sequence, Tuple,
                    Union)

import torch
import torch.nn.functional as F
from torch import Tensor

# Logits of these dtypes (mixed precision) are handled in float32: see
# :class:`PixelPolicy` and :func:`pool_logits`.
HALF_DTYPES = (torch.float16, torch.bfloat16)

# Uniforms from torch.rand have a resolution of 2**-24, so no action is drawn
# with a probability below it; flooring q(a) there bounds importance weights
# when float rounding lets the last class win an interval of width ~0.
MIN_SAMPLING_PROB = 2.0**-24


@contextmanager
def serial_cpu_ops(tensor: Tensor) -> Iterator[None]:
    """Run a block of many small CPU tensor ops on one intra-op thread.

    The RL bookkeeping is a few dozen element-wise ops on (K, B, H, W)
    tensors. Each is large enough for OpenMP to split across threads but so
    cheap that, when the cores are shared (data-loader workers, other jobs),
    waiting for a descheduled thread costs far more than the op: measured on
    2 shared cores, the per-class sampling loop took ~340 ms on 2 threads
    and ~6 ms on one. No effect for tensors on accelerators or with one
    thread.
    """
    threads = torch.get_num_threads()
    if tensor.device.type != 'cpu' or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _action_dtype(num_classes: int) -> torch.dtype:
    return torch.uint8 if num_classes <= 255 else torch.int32


def sample_inverse_cdf(probs: Tensor,
                       num_samples: int = 1,
                       stratified: bool = False,
                       generator: Optional[torch.Generator] = None) -> Tensor:
    """Draw ``num_samples`` action maps from per-pixel class probabilities.

    Args:
        probs (Tensor): Probabilities of shape (B, C, H, W), summing to one
            over C.
        num_samples (int): Number K of action maps. Defaults to 1.
        stratified (bool): Use one uniform ``u`` per pixel and the K
            stratified points ``(k + u) / K`` (systematic sampling): each
            sample is still marginally distributed as ``probs`` and the
            sample mean of any per-pixel function stays unbiased, but the
            class counts per pixel are within one of ``K * probs``, so the
            variance of K-sample averages falls as 1/K**2 instead of 1/K.
            The samples are not independent (do not combine with a
            leave-one-out baseline). Defaults to False.
        generator (torch.Generator, optional): Random generator.

    Returns:
        Tensor: Actions of shape (K, B, H, W), dtype long.
    """
    B, C, H, W = probs.shape
    K = num_samples
    if stratified and K > 1:
        u = torch.rand((1, B, H, W),
                       generator=generator,
                       device=probs.device,
                       dtype=probs.dtype)
        offsets = torch.arange(K, device=probs.device, dtype=probs.dtype)
        u = (offsets.view(K, 1, 1, 1) + u) / K
    else:
        u = torch.rand((K, B, H, W),
                       generator=generator,
                       device=probs.device,
                       dtype=probs.dtype)
    # action = #{c < C-1 : cdf_c < u}: the first class whose cdf reaches u.
    # One class at a time keeps the memory at O(K*B*H*W) (no (K,B,C,H,W)
    # boolean) and is ~5x faster than cumsum + compare + sum on CPU.
    actions = torch.zeros((K, B, H, W),
                          dtype=_action_dtype(C),
                          device=probs.device)
    with serial_cpu_ops(probs):
        cdf = probs[:, 0].clone()
        for c in range(1, C):
            actions += cdf < u
            if c < C - 1:
                cdf += probs[:, c]
        return actions.long()


def sample_gumbel_max(logits: Tensor,
                      num_samples: int = 1,
                      generator: Optional[torch.Generator] = None) -> Tensor:
    """Reference sampler: ``argmax_c (z_c + Gumbel noise)``.

    Exact and simple, but needs C uniforms and two logarithms per pixel and
    sample (about 20x the cost of :func:`sample_inverse_cdf` on CPU).

    Args:
        logits (Tensor): Logits of shape (B, C, H, W).
        num_samples (int): Number K of action maps. Defaults to 1.
        generator (torch.Generator, optional): Random generator.

    Returns:
        Tensor: Actions of shape (K, B, H, W), dtype long.
    """
    shape = (num_samples, ) + tuple(logits.shape)
    u = torch.rand(
        shape, generator=generator, device=logits.device, dtype=logits.dtype)
    gumbel = -torch.log(-torch.log(u.clamp_(min=1e-20)))
    return (logits.unsqueeze(0) + gumbel).argmax(dim=2)


def gather_actions(values: Tensor, actions: Tensor) -> Tensor:
    """Pick ``values[b, a[k, b, h, w], h, w]`` for each sample and pixel.

    Args:
        values (Tensor): Per-class values of shape (B, C, H, W).
        actions (Tensor): Actions of shape (K, B, H, W).

    Returns:
        Tensor: Values of shape (K, B, H, W) (differentiable in ``values``).
    """
    return values.gather(1, actions.transpose(0, 1)).transpose(0, 1)


def action_log_prob(logits: Tensor, actions: Tensor) -> Tensor:
    """Log-probability ``log softmax(z)[a]`` of given actions.

    Args:
        logits (Tensor): Logits of shape (B, C, H, W).
        actions (Tensor): Actions of shape (K, B, H, W).

    Returns:
        Tensor: Log-probabilities of shape (K, B, H, W), differentiable in
        ``logits``.
    """
    return gather_actions(F.log_softmax(logits, dim=1), actions)


class PixelPolicy:
    """A per-pixel categorical policy over classes, from logits.

    Detached probabilities are computed once, in float32, and shared by the
    sampler, the losses and the logged statistics. Gradients flow only
    through :attr:`logits`.

    Under mixed precision the logits are float16 or bfloat16; everything
    derived from them here (probabilities, log-probabilities, the sampling
    policy, entropy, gathered ``pi(a)`` and ``q(a)``) is float32, and no
    op on that path is one autocast lowers (no matmul or convolution), so
    sampling, importance weights, advantages and the closed-form gradient
    are float32 whatever the logits' dtype. Only the finished gradient is
    cast back to it (:class:`~rss_mmseg.models.losses.utils.
    _PrecomputedGradient`).

    Args:
        logits (Tensor): Logits of shape (B, C, H, W); the target policy is
            ``softmax(logits)``.
        temperature (float): Temperature of the sampling policy. Defaults
            to 1.0.
        uniform_mix (float): Weight of the uniform distribution mixed into
            the sampling policy; bounds importance weights by
            ``C / uniform_mix``. Defaults to 0.0.
    """

    def __init__(self,
                 logits: Tensor,
                 temperature: float = 1.0,
                 uniform_mix: float = 0.0) -> None:
        if logits.dim() != 4:
            raise ValueError('logits must have shape (B, C, H, W), got '
                             f'{tuple(logits.shape)}')
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        if not 0.0 <= uniform_mix < 1.0:
            raise ValueError(f'uniform_mix must be in [0, 1), got '
                             f'{uniform_mix}')
        self.logits = logits
        self.temperature = float(temperature)
        self.uniform_mix = float(uniform_mix)
        self._probs: Optional[Tensor] = None
        self._log_probs: Optional[Tensor] = None
        self._sampling_probs: Optional[Tensor] = None
        self._entropy: Optional[Tensor] = None
        self._gathered: Dict[str, Tuple[Tensor, Tensor]] = dict()

    @property
    def num_classes(self) -> int:
        return self.logits.shape[1]

    @property
    def on_policy(self) -> bool:
        """Whether the sampling policy is the target policy itself."""
        return self.temperature == 1.0 and self.uniform_mix == 0.0

    @property
    def probs(self) -> Tensor:
        """Detached float32 ``softmax(logits)``, (B, C, H, W)."""
        if self._probs is None:
            with torch.no_grad():
                self._probs = torch.softmax(self.logits.detach().float(), 1)
        return self._probs

    @property
    def log_probs(self) -> Tensor:
        """Detached float32 ``log_softmax(logits)``, (B, C, H, W)."""
        if self._log_probs is None:
            with torch.no_grad():
                self._log_probs = F.log_softmax(self.logits.detach().float(),
                                                1)
        return self._log_probs

    @property
    def sampling_probs(self) -> Tensor:
        """Detached probabilities ``q`` of the sampling policy."""
        if self._sampling_probs is None:
            if self.on_policy:
                self._sampling_probs = self.probs
            else:
                with torch.no_grad():
                    q = self.probs
                    if self.temperature != 1.0:
                        # softmax(z / T) = pi**(1/T) / sum(pi**(1/T)),
                        # cheaper than a second softmax (sqrt for T = 2)
                        q = q.sqrt() if self.temperature == 2.0 else q.pow(
                            1.0 / self.temperature)
                        q = q.div_(q.sum(1, keepdim=True))
                    if self.uniform_mix > 0:
                        q = q * (1.0 - self.uniform_mix) + (
                            self.uniform_mix / self.num_classes)
                    self._sampling_probs = q
        return self._sampling_probs

    def entropy(self) -> Tensor:
        """Detached per-pixel entropy of the target policy, (B, H, W)."""
        if self._entropy is None:
            with torch.no_grad():
                self._entropy = -(self.probs * self.log_probs).sum(1)
        return self._entropy

    def sample(self,
               num_samples: int = 1,
               stratified: bool = False,
               generator: Optional[torch.Generator] = None
               ) -> Tuple[Tensor, Tensor]:
        """Draw K action maps from the sampling policy.

        Args:
            num_samples (int): Number K of action maps. Defaults to 1.
            stratified (bool): See :func:`sample_inverse_cdf`.
            generator (torch.Generator, optional): Random generator.

        Returns:
            tuple[Tensor, Tensor]: Actions (K, B, H, W), long, and their
            probabilities under the sampling policy (K, B, H, W), floored
            at :data:`MIN_SAMPLING_PROB`.
        """
        actions = sample_inverse_cdf(self.sampling_probs, num_samples,
                                     stratified, generator)
        return actions, self.sampling_prob(actions)

    def _gather(self, name: str, values: Callable[[], Tensor],
                actions: Tensor) -> Tensor:
        """Gather per-class values at the actions, cached per actions."""
        cached = self._gathered.get(name)
        if cached is not None and cached[0] is actions:
            return cached[1]
        out = gather_actions(values(), actions)
        if name == 'sampling_prob':
            out.clamp_(min=MIN_SAMPLING_PROB)
        self._gathered[name] = (actions, out)
        return out

    def prob(self, actions: Tensor) -> Tensor:
        """Detached target probabilities ``pi(a)``, (K, B, H, W).

        Cached for the last ``actions`` tensor: do not modify in place.
        """
        return self._gather('prob', lambda: self.probs, actions)

    def sampling_prob(self, actions: Tensor) -> Tensor:
        """Detached sampling probabilities ``q(a)``, (K, B, H, W), floored
        at :data:`MIN_SAMPLING_PROB`.

        Cached for the last ``actions`` tensor: do not modify in place.
        """
        return self._gather('sampling_prob', lambda: self.sampling_probs,
                            actions)

    def log_prob(self, actions: Tensor) -> Tensor:
        """Differentiable ``log pi(a)``, (K, B, H, W)."""
        return action_log_prob(self.logits.float(), actions)


# A PSR scale as configured: s (an s x s grid), (rows, cols) or None (full
# resolution); and as used: (rows, cols) or None.
ScaleSpec = Union[int, Tuple[int, int], None]
ScaleType = Optional[Tuple[int, int]]


def as_grid(scale: Union[int, Sequence[int], None]) -> ScaleType:
    """Normalize a PSR scale: ``s`` -> ``(s, s)``, ``(h, w)`` kept, ``None``
    (full resolution) kept. Raises ValueError for anything else."""
    if scale is None:
        return None
    if isinstance(scale, int) and not isinstance(scale, bool):
        grid = (scale, scale)
    elif (isinstance(scale, (tuple, list)) and len(scale) == 2
          and all(isinstance(s, int) for s in scale)):
        grid = (int(scale[0]), int(scale[1]))
    else:
        raise ValueError('a PSR scale is an int s (an s x s grid of cells), '
                         'a pair (rows, cols) or None (full resolution), '
                         f'got {scale!r}')
    if min(grid) < 1:
        raise ValueError(f'a PSR scale must be >= 1, got {scale!r}')
    return grid


def pool_logits(logits: Tensor, grid: ScaleType) -> Tensor:
    """Average the logits over the cells of a ``grid`` (rows, cols).

    The cell policy is ``softmax`` of the mean logits of its pixels (a
    geometric mean of their distributions), differentiable in ``logits``.
    ``grid=None`` returns the logits unchanged (one cell per pixel).
    Half-precision logits (mixed precision) are pooled in float32, and the
    gradient reaches them after the division by the cell area (see
    :class:`_PoolInFloat32`).

    Args:
        logits (Tensor): Logits (B, C, H, W).
        grid (tuple[int, int] | None): Number of cell rows and columns.

    Returns:
        Tensor: Cell logits (B, C, rows, cols); float32 for float16 or
        bfloat16 logits, else of the logits' dtype.
    """
    if grid is None or tuple(grid) == tuple(logits.shape[-2:]):
        return logits
    H, W = logits.shape[-2:]
    if grid[0] > H or grid[1] > W:
        raise ValueError(f'PSR grid {tuple(grid)} is finer than the logits '
                         f'map {(H, W)} it pools: use a scale <= {(H, W)} '
                         '(or None for full resolution)')
    if logits.dtype in HALF_DTYPES:
        return _PoolInFloat32.apply(logits, tuple(grid))
    return F.adaptive_avg_pool2d(logits, grid)


class _PoolInFloat32(torch.autograd.Function):
    """``adaptive_avg_pool2d`` of half-precision logits, in float32.

    Under mixed precision (``--amp``) the head's logits are float16 or
    bfloat16. Pooled in their own dtype, the cell gradient would be cast to
    it *before* the pooling's backward divides it by the cell area: a cell
    gradient of ~1 (one image, K = 2, a 1x1 grid, group-normalized
    advantages) times a loss scale of 2**16 is ``inf`` in float16, although
    the per-pixel gradient is ``area`` times smaller. Here the cell logits
    are float32 (the policy, the losses and the closed-form gradient stay
    float32), the cell gradient is spread over the pixels in float32 and
    cast once, per pixel. Nothing of full resolution is saved for backward
    (``F.adaptive_avg_pool2d(logits.float())`` would keep the float32
    copy).
    """

    @staticmethod
    def forward(ctx, logits: Tensor, grid: Tuple[int, int]) -> Tensor:
        ctx.shape = logits.shape
        ctx.dtype = logits.dtype
        return F.adaptive_avg_pool2d(logits.float(), grid)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, None]:
        # the pooling's backward reads only the input's shape
        shape_of = grad.new_empty(ctx.shape, dtype=torch.float32)
        grad_in = torch.ops.aten._adaptive_avg_pool2d_backward(
            grad.float().contiguous(), shape_of)
        return grad_in.to(ctx.dtype), None


def upsample_actions(actions: Tensor, size: Tuple[int, int]) -> Tensor:
    """Nearest-neighbour upsampling of cell actions to an action map.

    Pixel ``(y, x)`` takes the action of cell
    ``(y * rows // H, x * cols // W)``: the cell whose adaptive-pooling
    window starts at or before it (the windows of
    :func:`~torch.nn.functional.adaptive_avg_pool2d` overlap by at most one
    pixel when ``H`` is not a multiple of ``rows``).

    Args:
        actions (Tensor): Cell actions (K, B, rows, cols).
        size (tuple[int, int]): Output size (H, W).

    Returns:
        Tensor: Action maps (K, B, H, W), same dtype.
    """
    rows, cols = actions.shape[-2:]
    if (rows, cols) == tuple(size):
        return actions
    ys, xs = _cell_coords((rows, cols), size, actions.device)
    return actions[..., ys[:, None], xs[None, :]]


def _cell_coords(grid: Tuple[int, int], size: Tuple[int, int],
                 device: torch.device) -> Tuple[Tensor, Tensor]:
    """Cell row of every pixel row and cell column of every pixel column."""
    (rows, cols), (H, W) = grid, size
    ys = torch.arange(H, device=device) * rows // H
    xs = torch.arange(W, device=device) * cols // W
    return ys, xs


def pixel_cells(grid: Tuple[int, int], size: Tuple[int, int],
                device: Union[torch.device, str, None] = None) -> Tensor:
    """Flat cell index ``row * cols + col`` of every pixel, (H, W) int64.

    The same cell-to-pixel map as :func:`upsample_actions`, so counting the
    reference per cell and then per cell action equals counting the
    upsampled action map pixel by pixel.
    """
    ys, xs = _cell_coords(tuple(grid), tuple(size), device)
    return ys[:, None] * grid[1] + xs[None, :]
