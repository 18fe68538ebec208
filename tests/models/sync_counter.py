"""Count the tensor calls that would block the host on an accelerator.

On a GPU these stall the host until the device has caught up (a
device-to-host read, a data-dependent output size, or a blocking
host-to-device copy). On CPU nothing stalls, so the tests count the *calls*
instead: a counted call on CPU is a host-device sync on a GPU run of the
same code.

Counted:

- reads of device values into Python: ``item``, ``tolist``, ``numpy``,
  ``__bool__`` / ``__int__`` / ``__float__`` / ``__index__`` /
  ``__complex__``, ``equal``, ``allclose``, ``is_nonzero``, ``cpu()`` and
  ``to('cpu')``;
- outputs sized by the data: ``nonzero`` / ``argwhere`` /
  ``where(cond)``, ``masked_select``, boolean-mask indexing and assignment
  (``x[mask]``, ``x[mask] = v``, ``index_put_`` with a mask), ``unique``
  (and ``unique_consecutive``), ``repeat_interleave`` with tensor repeats
  and no ``output_size``, ``bincount`` (CUDA reads the max and min of the
  input to size the output), ``one_hot`` without ``num_classes``;
- blocking host-to-device copies: ``new_tensor`` and ``torch.tensor`` /
  ``torch.as_tensor`` of host data onto a ``device``.

Each counted call is attributed to the innermost stack frame in the
``rss_mmseg`` package (``file:line``), or to ``'<other>'`` when no
``rss_mmseg`` code is on the stack (mmengine's logging, the test itself).
"""
import collections
import os
import sys
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

PACKAGE_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), 'rss_mmseg') + os.sep

_ALWAYS = ('item', 'tolist', 'numpy', '__bool__', '__int__', '__float__',
           '__index__', '__complex__', 'equal', 'allclose', 'is_nonzero',
           'cpu', 'nonzero', 'argwhere', 'masked_select', 'unique',
           'unique_consecutive', 'bincount', 'new_tensor')
_TORCH_ALWAYS = ('nonzero', 'argwhere', 'masked_select', 'unique',
                 'unique_consecutive', 'bincount', 'equal', 'allclose',
                 'is_nonzero')


def _has_bool_index(index) -> bool:
    items = index if isinstance(index, (tuple, list)) else (index, )
    return any(
        isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


def _is_host_data(data) -> bool:
    return not isinstance(data, torch.Tensor)


def _to_cpu(self, *args, **kwargs) -> bool:
    """Whether ``Tensor.to(...)`` moves a tensor to the host."""
    target = kwargs.get('device')
    for arg in args:
        if isinstance(arg, (str, torch.device)):
            target = arg
        elif isinstance(arg, torch.Tensor):
            target = arg.device
    if target is None:
        return False
    return torch.device(target).type == 'cpu' and self.device.type != 'cpu'


class SyncCounter:
    """Context manager: counts syncing calls per ``rss_mmseg`` call site.

    Attributes:
        sites (Counter): ``'path:line (name)'`` -> calls, for calls made
            (directly or through torch) from ``rss_mmseg`` code.
        other (Counter): The same for calls with no ``rss_mmseg`` frame on
            the stack.
    """

    def __init__(self) -> None:
        self.sites: Dict[str, int] = collections.Counter()
        self.other: Dict[str, int] = collections.Counter()
        self._saved: List[Tuple[object, str, object, bool]] = []
        self._depth = 0

    @property
    def total(self) -> int:
        return sum(self.sites.values())

    def _record(self, name: str) -> None:
        frame = sys._getframe(2)
        while frame is not None:
            path = frame.f_code.co_filename
            if path.startswith(PACKAGE_DIR):
                site = (f'rss_mmseg/{path[len(PACKAGE_DIR):]}:'
                        f'{frame.f_lineno} ({name})')
                self.sites[site] += 1
                return
            frame = frame.f_back
        self.other[name] += 1

    def _wrap(self, owner, name: str,
              counts: Optional[Callable[..., bool]] = None) -> None:
        original = getattr(owner, name)
        own = name in vars(owner)
        counter = self

        def wrapper(*args, **kwargs):
            # calls made while a counted call runs (torch's own Python
            # code) are part of that call
            if counter._depth == 0 and (counts is None
                                        or counts(*args, **kwargs)):
                counter._record(name)
            counter._depth += 1
            try:
                return original(*args, **kwargs)
            finally:
                counter._depth -= 1

        wrapper.__name__ = getattr(original, '__name__', name)
        self._saved.append((owner, name, original, own))
        setattr(owner, name, wrapper)

    def __enter__(self) -> 'SyncCounter':
        T = torch.Tensor
        for name in _ALWAYS:
            self._wrap(T, name)
        for name in _TORCH_ALWAYS:
            self._wrap(torch, name)
        self._wrap(T, '__getitem__',
                   lambda self, index: _has_bool_index(index))
        self._wrap(T, '__setitem__',
                   lambda self, index, value: _has_bool_index(index))
        for owner in (T, torch):
            self._wrap(
                owner, 'index_put_',
                lambda self, indices, *a, **k: _has_bool_index(indices))
            self._wrap(
                owner, 'index_put',
                lambda self, indices, *a, **k: _has_bool_index(indices))
            self._wrap(
                owner, 'repeat_interleave', lambda self, repeats=None, *a, **
                k: isinstance(repeats, torch.Tensor) and repeats.numel() > 1
                and k.get('output_size') is None)
        self._wrap(T, 'to', _to_cpu)
        # torch.where(cond) with one argument is nonzero
        self._wrap(torch, 'where', lambda *a, **k: len(a) + len(k) == 1)
        self._wrap(F, 'one_hot',
                   lambda t, num_classes=-1: num_classes is None
                   or num_classes < 0)
        for name in ('tensor', 'as_tensor'):
            self._wrap(
                torch, name, lambda data, *a, **k: _is_host_data(data) and
                k.get('device') is not None)
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, original, own in reversed(self._saved):
            if own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)
        self._saved.clear()

    def report(self) -> str:
        lines = [f'{count:4d}  {site}' for site, count in sorted(
            self.sites.items())]
        return '\n'.join(lines) or '(none)'
