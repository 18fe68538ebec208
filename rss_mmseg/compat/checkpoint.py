"""Safe loading of mmengine checkpoints under torch>=2.6.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``: it unpickles
only tensors, containers and an allow-list of globals. mmengine 0.10.7 writes
checkpoints whose ``message_hub`` holds :class:`mmengine.logging.HistoryBuffer`
objects (numpy arrays inside) and whose meta may hold numpy scalars, so
``--resume``, ``load_from`` and ``tools/test.py`` fail with::

    UnpicklingError: Weights only load failed ... Unsupported global:
    GLOBAL mmengine.logging.history_buffer.HistoryBuffer

The fix here keeps ``weights_only=True`` and extends torch's allow-list with
exactly the data types mmengine writes (:data:`CHECKPOINT_SAFE_GLOBALS`);
arbitrary callables (``os.system``, ``eval``, ...) are still refused.

One entry needs care: a ``HistoryBuffer`` pickles its statistics methods
(``HistoryBuffer.mean`` ...) as ``getattr(HistoryBuffer, 'mean')``, so the
stream calls ``builtins.getattr``. Allowing the real ``getattr`` would open
every attribute of every allowed class (``__init__.__globals__`` leads to
modules and from there anywhere). Instead the name ``builtins.getattr`` is
bound to :func:`_history_buffer_getattr`, which only returns statistics
methods of ``HistoryBuffer`` and refuses anything else. Like the other
changes to upstream behaviour (:mod:`rss_mmseg.compat.crash_safe_checkpoint`,
:mod:`rss_mmseg.registry`), it is applied once by ``import rss_mmseg``
(which configs do through ``custom_imports``).
Blanket ``weights_only=False`` is deliberately not used: it would let any
checkpoint run code on load.
"""
import pickle
from typing import Any, List, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray

SafeGlobal = Union[Any, Tuple[Any, str]]


def _numpy_globals() -> List[SafeGlobal]:
    """numpy arrays, dtypes and scalars, under both numpy 1 and 2 names."""
    entries: List[SafeGlobal] = [np.ndarray, np.dtype]
    for name in ('_reconstruct', 'scalar'):
        func = getattr(_multiarray, name)
        entries.append(func)
        # Checkpoints written under numpy 1.x name numpy.core.multiarray.*,
        # under numpy 2.x numpy._core.multiarray.*; accept both spellings.
        for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            entries.append((func, f'{module}.{name}'))
    # numpy >= 1.25 pickles dtypes through their numpy.dtypes.*DType class.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        entries.extend(
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType') and name != 'StringDType')
    return entries


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` restricted to ``HistoryBuffer``'s statistics methods."""
    if obj is HistoryBuffer and not name.startswith('_') and callable(
            getattr(HistoryBuffer, name, None)):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refused getattr({obj!r}, {name!r}) in a checkpoint: rss_mmseg only '
        'allows HistoryBuffer statistics methods (see '
        'rss_mmseg/compat/checkpoint.py)')


CHECKPOINT_SAFE_GLOBALS: List[SafeGlobal] = [
    HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'),
    *_numpy_globals()
]


def register_checkpoint_safe_globals() -> None:
    """Allow-list the globals mmengine checkpoints need (idempotent)."""
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:  # torch >= 2.4
        add_safe_globals(CHECKPOINT_SAFE_GLOBALS)
