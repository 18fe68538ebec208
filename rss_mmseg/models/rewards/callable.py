"""An image-level reward from any user scoring function.

The user function is named by a dotted path in the config, so a new reward
is a config change: ``reward=dict(type='CallableReward',
fn='my_project.scores.sharpness')``. It needs nothing from the data samples
beyond what it reads itself, so it also trains on data without pixel labels.
"""
import importlib
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import torch
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import Tensor

__all__ = ['CallableReward', 'import_callable']


def import_callable(path: str) -> Callable:
    """Import the object named by a dotted path such as ``'pkg.mod.fn'``.

    The longest importable module prefix is imported and the rest is looked
    up as attributes, so ``'pkg.mod.Class.method'`` works too.

    Args:
        path (str): Dotted path of a callable.

    Returns:
        Callable: The object the path names.
    """
    parts = path.split('.') if isinstance(path, str) else []
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise ValueError(f'fn={path!r} is not a dotted path of a function; '
                         "write it as 'package.module.function'")
    module = None
    for split in range(len(parts) - 1, 0, -1):
        module_name = '.'.join(parts[:split])
        try:
            module = importlib.import_module(module_name)
            break
        except ModuleNotFoundError as error:
            # Only the prefix itself missing means "try a shorter prefix";
            # a module that fails on one of its own imports is an error.
            missing = error.name or ''
            if module_name != missing and \
                    not module_name.startswith(missing + '.'):
                raise ImportError(f'importing module {module_name!r} for '
                                  f'fn={path!r} failed: {error}') from error
    if module is None:
        raise ImportError(f'fn={path!r}: no module named {parts[0]!r} '
                          '(is its package installed or on PYTHONPATH?)')
    obj: Any = module
    for depth in range(split, len(parts)):
        if not hasattr(obj, parts[depth]):
            owner = '.'.join(parts[:depth])
            hint = '' if depth == len(parts) - 1 else \
                f' and {".".join(parts[:depth + 1])!r} is not a module'
            raise ImportError(f'fn={path!r}: {owner!r} has no attribute '
                              f'{parts[depth]!r}{hint}')
        obj = getattr(obj, parts[depth])
    if not callable(obj):
        raise ValueError(f'fn={path!r} names a {type(obj).__name__}, which '
                         'is not callable')
    return obj


def _qualified_name(fn: Callable) -> str:
    module = getattr(fn, '__module__', None)
    name = getattr(fn, '__qualname__', None)
    return f'{module}.{name}' if module and name else repr(fn)


@MODELS.register_module()
class CallableReward:
    """Score each sampled map with a user function.

    The function has the signature ``fn(inputs, action_maps, data_samples)``
    and returns one score per image:

    - ``batched=False``: called once per sample k with ``action_maps`` of
      shape (B, H, W); returns (B,).
    - ``batched=True``: called once with (K, B, H, W); returns (K, B).

    ``inputs`` are the batch images (B, 3, H, W) as the network sees them
    (normalized), or None with ``pass_inputs=False``. The function may
    return a tensor, a numpy array or a list; it runs under
    :func:`torch.no_grad` and its output is converted to float32 on the
    device of the actions. Every image counts as valid: the scorer decides
    what each image is worth (the head still rejects non-finite values and
    values outside ``value_range``).

    Args:
        fn (str | Callable): Dotted path ``'package.module.function'``,
            imported when the reward is built, or the function itself.
        value_range (tuple[float, float], optional): Declared range
            ``(low, high)`` of the scores; None when unknown. Defaults to
            None.
        batched (bool): Call ``fn`` once with all K samples instead of once
            per sample. Defaults to False.
        pass_inputs (bool): Give ``fn`` the batch images (sets
            ``needs_inputs``); with False it receives ``inputs=None``.
            Defaults to True.
        name (str, optional): Display name; defaults to the dotted path.
    """

    level = 'image'

    def __init__(self,
                 fn: Union[str, Callable],
                 value_range: Optional[Sequence[float]] = None,
                 batched: bool = False,
                 pass_inputs: bool = True,
                 name: Optional[str] = None) -> None:
        if isinstance(fn, str):
            self.fn_path = fn
            self.fn = import_callable(fn)
        elif callable(fn):
            self.fn_path = _qualified_name(fn)
            self.fn = fn
        else:
            raise ValueError('fn must be a dotted path or a callable, got '
                             f'{fn!r}')
        self.value_range = self._check_range(value_range)
        self.batched = bool(batched)
        self.needs_inputs = bool(pass_inputs)
        if name is not None and not isinstance(name, str):
            raise ValueError(f'name must be a str or None, got {name!r}')
        self.name = name or self.fn_path

    @staticmethod
    def _check_range(
            value_range: Optional[Sequence[float]]
    ) -> Optional[Tuple[float, float]]:
        if value_range is None:
            return None
        try:
            low, high = (float(v) for v in value_range)
        except (TypeError, ValueError):
            raise ValueError('value_range must be None or a pair (low, high)'
                             f', got {value_range!r}') from None
        if not low < high:
            raise ValueError('value_range must have low < high, got '
                             f'{value_range!r}')
        return low, high

    def __call__(self,
                 actions: Tensor,
                 data_samples: List[SegDataSample],
                 inputs: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Score action maps with the user function.

        Args:
            actions (Tensor): Sampled classes of shape (K, B, H, W), integer.
            data_samples (list[:obj:`SegDataSample`]): The batch, passed to
                ``fn`` as is (it need not carry ``gt_sem_seg``).
            inputs (Tensor, optional): Batch images (B, 3, H, W); passed to
                ``fn`` only when ``needs_inputs``.

        Returns:
            tuple[Tensor, Tensor]: Rewards (K, B) float32 and the valid mask
            (B,) bool, all True.
        """
        if actions.dim() != 4:
            raise ValueError('actions must have shape (K, B, H, W), got '
                             f'{tuple(actions.shape)}')
        num_samples, batch = actions.shape[:2]
        if len(data_samples) != batch:
            raise ValueError(f'{len(data_samples)} data samples for actions '
                             f'of batch size {batch}')
        inputs = inputs if self.needs_inputs else None
        with torch.no_grad():
            if self.batched:
                rewards = self._as_scores(
                    self.fn(inputs, actions, data_samples),
                    (num_samples, batch), actions.device)
            else:
                rewards = torch.stack([
                    self._as_scores(
                        self.fn(inputs, actions[k], data_samples), (batch, ),
                        actions.device) for k in range(num_samples)
                ])
        valid = torch.ones(batch, dtype=torch.bool, device=actions.device)
        return rewards, valid

    def _as_scores(self, scores: Any, shape: Tuple[int, ...],
                   device: torch.device) -> Tensor:
        """Convert the function's output to float32 and check its shape."""
        try:
            if isinstance(scores, (list, tuple)):
                scores = [
                    s.detach().cpu() if isinstance(s, Tensor) else s
                    for s in scores
                ]
            scores = torch.as_tensor(
                scores, dtype=torch.float32, device=device)
        except (TypeError, ValueError, RuntimeError) as error:
            raise ValueError(f'fn={self.fn_path!r} returned '
                             f'{type(scores).__name__}, which is not '
                             f'convertible to a float tensor: {error}') \
                from error
        if tuple(scores.shape) != shape:
            per = 'sample and image' if self.batched else 'image'
            raise ValueError(f'fn={self.fn_path!r} returned scores of shape '
                             f'{tuple(scores.shape)}, expected {shape} (one '
                             f'score per {per}, batched={self.batched})')
        return scores.detach()

    def __repr__(self) -> str:
        name = '' if self.name == self.fn_path else f', name={self.name!r}'
        return (f'{self.__class__.__name__}(fn={self.fn_path!r}, '
                f'batched={self.batched}, pass_inputs={self.needs_inputs}, '
                f'value_range={self.value_range}{name})')
