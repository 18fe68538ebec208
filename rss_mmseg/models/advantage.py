"""SyncAN: advantage normalization over the global (distributed) batch.

The baseline of a policy-gradient loss is the mean of the returns over the
whole batch, and SyncAN also divides by their standard deviation. Under
distributed training each rank sees only its shard of the batch, so the sum,
the sum of squares and the count of the valid entries are all-reduced
(``mmengine.dist.all_reduce``) before the moments are formed: every rank then
uses the same statistics, those of the concatenated global batch. Without an
initialized process group the same code uses the local batch, so one process
and N processes run one code path.

Every rank must call these functions the same number of times (the
all-reduce is collective), including ranks whose batch is entirely ignored.
"""
from typing import Optional, Sequence, Tuple

import torch
from mmengine.dist import all_reduce, is_distributed
from torch import Tensor


@torch.no_grad()
def global_sums(tensors: Sequence[Tensor],
                valid: Optional[Tensor] = None,
                repeats: int = 1) -> Tensor:
    """Sums over the global batch, and the global count of valid entries.

    Args:
        tensors (Sequence[Tensor]): Tensors, already zero where not valid.
        valid (Tensor, optional): Boolean mask of the valid entries (only
            counted). Defaults to all entries of the first tensor.
        repeats (int): Each valid entry counts this many times (e.g. K
            samples over a (B, H, W) mask). Defaults to 1.

    Returns:
        Tensor: float64 of shape (len(tensors) + 1,): the sums, then the
        count, all-reduced over ranks when distributed.
    """
    sums = [t.sum(dtype=torch.float64) for t in tensors]
    if valid is None:
        count = torch.tensor(
            float(tensors[0].numel()),
            dtype=torch.float64,
            device=tensors[0].device)
    else:
        count = valid.sum(dtype=torch.float64) * repeats
    stats = torch.stack(sums + [count])
    if is_distributed():
        all_reduce(stats, op='sum')
    return stats


@torch.no_grad()
def global_moments(values: Tensor,
                   valid: Optional[Tensor] = None
                   ) -> Tuple[Tensor, Tensor, Tensor]:
    """Mean and (population) standard deviation over the global batch.

    Args:
        values (Tensor): Values of any shape.
        valid (Tensor, optional): Boolean mask broadcastable to ``values``;
            only entries where it is true count. Defaults to all.

    Returns:
        tuple[Tensor, Tensor, Tensor]: Scalar ``mean``, ``std`` and ``count``
        (float64) over all ranks. With a count of zero, mean is 0 and std 0.
    """
    values = values.detach().double()
    if valid is not None:
        valid = valid.expand_as(values)
        values = values.masked_fill(~valid, 0.0)
    total, total_sq, count = global_sums([values, values.square()],
                                         valid).unbind()
    denom = count.clamp(min=1.0)
    mean = total / denom
    var = (total_sq / denom - mean.square()).clamp(min=0.0)
    return mean, var.sqrt(), count


@torch.no_grad()
def sync_normalize(values: Tensor,
                   valid: Optional[Tensor] = None,
                   normalize_std: bool = True,
                   eps: float = 1e-6) -> Tuple[Tensor, Tensor, Tensor]:
    """SyncAN: ``(values - mean) / (std + eps)`` with global statistics.

    Args:
        values (Tensor): Returns (e.g. rewards) of any shape.
        valid (Tensor, optional): Boolean mask broadcastable to ``values``.
            Invalid entries get an advantage of exactly 0. Defaults to all.
        normalize_std (bool): Divide by the global std. When False only the
            global mean is subtracted (a synchronized mean baseline).
            Defaults to True.
        eps (float): Added to the std. Defaults to 1e-6.

    Returns:
        tuple[Tensor, Tensor, Tensor]: Advantages (same shape and dtype as
        ``values``), and the scalar global ``mean`` and ``std`` used.
    """
    mean, std, _ = global_moments(values, valid)
    adv = values.detach() - mean.to(values.dtype)
    if normalize_std:
        adv = adv / (std.to(values.dtype) + eps)
    if valid is not None:
        adv = adv.masked_fill(~valid.expand_as(adv), 0.0)
    return adv, mean, std
