"""Check every ``type=`` name in a config against mmseg's registries up front.

mmengine reports an unknown type deep inside ``Runner.from_cfg`` without the
config file or the key that holds it. :func:`check_config` walks the parts of
a config that are built from registries and raises one :class:`ConfigError`
naming the file, the dotted key, the unknown name, close registered names and
the usual fix (a missing ``custom_imports``).
"""
import difflib
from typing import Any, Iterator, List, Tuple

from mmengine.registry import Registry
from mmseg.registry import (DATASETS, HOOKS, METRICS, MODELS, OPTIM_WRAPPERS,
                            OPTIMIZERS, PARAM_SCHEDULERS, TRANSFORMS,
                            VISUALIZERS)

# Keys whose sub-config is built by another registry than its parent's.
_SKIP_KEYS = ('init_cfg', )
_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


class ConfigError(KeyError):
    """A config names a component that no registry knows."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


def _typed_nodes(node: Any, path: str) -> Iterator[Tuple[str, str]]:
    """Yield (dotted key, type name) for every dict with a string ``type``."""
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            yield f'{path}.type', node['type']
        for key, value in node.items():
            if key not in _SKIP_KEYS and key != 'type':
                yield from _typed_nodes(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _typed_nodes(value, f'{path}[{i}]')


def _known_names(registry: Registry) -> List[str]:
    names = []
    while registry is not None:
        names.extend(registry.module_dict)
        registry = registry.parent
    return names


def _dataset_parts(dataset: dict, path: str):
    """A dataset's own type (DATASETS) and its pipeline (TRANSFORMS)."""
    if not isinstance(dataset, dict):
        return
    if isinstance(dataset.get('type'), str):
        yield DATASETS, f'{path}.type', dataset['type']
    for i, step in enumerate(dataset.get('pipeline') or []):
        for key, name in _typed_nodes(step, f'{path}.pipeline[{i}]'):
            yield TRANSFORMS, key, name
    for key in ('dataset', 'datasets'):  # wrappers: Repeat/ConcatDataset
        inner = dataset.get(key)
        inner = inner if isinstance(inner, list) else [inner]
        for i, sub in enumerate(inner):
            yield from _dataset_parts(sub, f'{path}.{key}[{i}]')


def _registered_parts(cfg) -> Iterator[Tuple[Registry, str, str]]:
    """(registry, dotted key, type name) for each registry-built entry."""
    for key, name in _typed_nodes(cfg.get('model'), 'model'):
        yield MODELS, key, name
    for loader in _LOADERS:
        if cfg.get(loader):
            yield from _dataset_parts(cfg[loader].get('dataset'),
                                      f'{loader}.dataset')
    for key, name in _typed_nodes(cfg.get('custom_hooks'), 'custom_hooks'):
        yield HOOKS, key, name
    for key, name in _typed_nodes(cfg.get('default_hooks'), 'default_hooks'):
        yield HOOKS, key, name
    for evaluator in ('val_evaluator', 'test_evaluator'):
        for key, name in _typed_nodes(cfg.get(evaluator), evaluator):
            yield METRICS, key, name
    optim = cfg.get('optim_wrapper') or {}
    if isinstance(optim.get('type'), str):
        yield OPTIM_WRAPPERS, 'optim_wrapper.type', optim['type']
    if isinstance((optim.get('optimizer') or {}).get('type'), str):
        yield OPTIMIZERS, 'optim_wrapper.optimizer.type', optim.optimizer.type
    schedulers = cfg.get('param_scheduler') or []
    schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
    for i, sched in enumerate(schedulers):
        if isinstance(sched, dict) and isinstance(sched.get('type'), str):
            yield PARAM_SCHEDULERS, f'param_scheduler[{i}].type', sched.type
    vis = cfg.get('visualizer') or {}
    if isinstance(vis.get('type'), str):
        yield VISUALIZERS, 'visualizer.type', vis['type']


def check_config(cfg, cfg_path: str = '<config>') -> None:
    """Raise :class:`ConfigError` for the unknown type names in ``cfg``."""
    problems = []
    for registry, key, name in _registered_parts(cfg):
        if registry.get(name) is not None:
            continue
        close = difflib.get_close_matches(
            name.split('::')[-1], _known_names(registry), n=3, cutoff=0.6)
        hint = f' Did you mean {", ".join(close)}?' if close else ''
        problems.append(f'  {key} = {name!r}: not in the {registry.scope}::'
                        f'{registry.name} registry.{hint}')
    if problems:
        raise ConfigError(
            f'{cfg_path}: unknown component name(s)\n' + '\n'.join(problems) +
            '\nFix: correct the name, or import the module that registers it '
            "(e.g. custom_imports = dict(imports=['rss_mmseg'], "
            'allow_failed_imports=False)).')
