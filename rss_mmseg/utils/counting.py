"""Histograms of a known length, without a host-device sync on devices."""
import torch
from torch import Tensor

__all__ = ['reads_are_free', 'histogram']


def reads_are_free(device: torch.device) -> bool:
    """Whether reading tensor values on the host costs no device sync.

    True for CPU tensors: there the data-dependent shortcuts (a bincount
    sized by its input, clamping only what needs it) are free; on an
    accelerator every value check stays on the device.
    """
    return device.type == 'cpu'


def histogram(index: Tensor, length: int) -> Tensor:
    """Counts of each value of a 1-D ``index`` known to lie in
    [0, length), exactly ``length`` of them, int64.

    ``torch.bincount`` on CUDA reads the input's maximum and minimum on the
    host to size its output: a sync. ``index_add_`` into a buffer of the
    known length does not (and is deterministic for integer counts).
    """
    if reads_are_free(index.device):
        return torch.bincount(index, minlength=length)
    one = torch.ones((), dtype=torch.long, device=index.device)
    return torch.zeros(
        length, dtype=torch.long, device=index.device).index_add_(
            0, index, one.expand(index.numel()))
