"""Check every ``type=`` name in a config against mmseg's registries up front.

mmengine reports an unknown type deep inside ``Runner.from_cfg`` without the
config file or the key that holds it. :func:`check_config` walks the parts of
a config that are built from registries and raises one :class:`ConfigError`
naming the file, the dotted key, the unknown name, close registered names and
the usual fix (a missing ``custom_imports``, or a package to install).

What it accepts is what mmseg's own ``tools/train.py`` can build:

* names are looked up the way mmengine's ``Registry.get`` does, so a scope
  prefix (``mmpretrain.ConvNeXt``, ``mmdet.Mask2FormerHead``) is looked up in
  that scope, importing its package; a prefix whose package is not installed
  is reported as such, with the ``pip install`` that fixes it (and one that
  is installed but fails to import, with the import error);
* inside ``model``, the sub-configs that models hand to another registry
  (``sampler`` -> TASK_UTILS, ``assigner``, ``match_costs``,
  ``prior_generator``, ``bbox_coder``, ...) are checked against that one;
  since a model may build any sub-config with any registry, a name that is
  not in the expected registry but in another of mmseg's is accepted;
* ``type`` given as a class (not a string) is not checked, nor are the
  albumentations transforms inside mmseg's ``Albu``;
* ``custom_imports`` whose package is not installed are reported (when the
  config was loaded with ``import_custom_modules=False``).
"""
import difflib
import importlib.util
from typing import Any, Dict, Iterator, List, NamedTuple, Optional

import mmseg.registry as mmseg_registry
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.registry import Registry
from mmseg.registry import (DATASETS, HOOKS, METRICS, MODELS, OPTIM_WRAPPERS,
                            OPTIMIZERS, PARAM_SCHEDULERS, TASK_UTILS,
                            TRANSFORMS, VISUALIZERS)

# Keys whose sub-config is built by another registry and is not checked
# (init_cfg: WEIGHT_INITIALIZERS).
_SKIP_KEYS = ('init_cfg', )
# Keys under ``model`` whose sub-config models build with TASK_UTILS (mmseg's
# pixel samplers; mmdet's assigners, match costs, samplers, coders, ...).
TASK_UTILS_KEYS = frozenset({
    'sampler', 'assigner', 'match_cost', 'match_costs', 'iou_calculator',
    'prior_generator', 'anchor_generator', 'point_generator', 'bbox_coder',
    'mask_coder'
})
_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
# Types whose sub-configs are not registry names: mmseg's ``Albu`` hands its
# ``transforms`` to albumentations.
_OPAQUE_KEYS = {'Albu': ('transforms', )}


class ConfigError(KeyError):
    """A config names a component that no registry knows, or one from a
    package that is not installed (or does not import)."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


class _Entry(NamedTuple):
    registry: Registry  # the registry that builds the entry
    key: str  # dotted key of the ``type`` field
    name: str  # the type name as written
    scope: Optional[str] = None  # an enclosing ``_scope_``
    loose: bool = False  # registry is a guess: accept any mmseg registry


def _typed_nodes(node: Any,
                 path: str,
                 scope: Optional[str] = None,
                 key: str = '') -> Iterator[tuple]:
    """Yield (dotted key, type name, ``_scope_``, parent key) for every dict
    with a string ``type``; ``key`` is the key that holds the dict (for list
    items, the key that holds the list)."""
    if isinstance(node, dict):
        scope = node.get('_scope_') or scope
        opaque = ()
        if isinstance(node.get('type'), str):
            yield f'{path}.type', node['type'], scope, key
            opaque = _OPAQUE_KEYS.get(node['type'].split('.')[-1], ())
        for sub_key, value in node.items():
            if sub_key not in _SKIP_KEYS + opaque + ('type', '_scope_'):
                yield from _typed_nodes(value, f'{path}.{sub_key}', scope,
                                        sub_key)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _typed_nodes(value, f'{path}[{i}]', scope, key)


def _entries(registry: Registry, node: Any, path: str) -> Iterator[_Entry]:
    for key, name, scope, _ in _typed_nodes(node, path):
        yield _Entry(registry, key, name, scope)


def _known_names(registry: Registry) -> List[str]:
    names = []
    while registry is not None:
        names.extend(registry.module_dict)
        registry = registry.parent
    return names


def _dataset_parts(dataset: dict, path: str) -> Iterator[_Entry]:
    """A dataset's own type (DATASETS) and its pipeline (TRANSFORMS)."""
    if not isinstance(dataset, dict):
        return
    if isinstance(dataset.get('type'), str):
        yield _Entry(DATASETS, f'{path}.type', dataset['type'],
                     dataset.get('_scope_'))
    for i, step in enumerate(dataset.get('pipeline') or []):
        yield from _entries(TRANSFORMS, step, f'{path}.pipeline[{i}]')
    for key in ('dataset', 'datasets'):  # wrappers: Repeat/ConcatDataset
        inner = dataset.get(key)
        inner = inner if isinstance(inner, list) else [inner]
        for i, sub in enumerate(inner):
            yield from _dataset_parts(sub, f'{path}.{key}[{i}]')


def _model_parts(model: Any) -> Iterator[_Entry]:
    """Everything typed under ``model``: MODELS, except the sub-configs that
    models build with TASK_UTILS; every registry guess is loose."""
    for key, name, scope, parent_key in _typed_nodes(model, 'model'):
        registry = TASK_UTILS if parent_key in TASK_UTILS_KEYS else MODELS
        yield _Entry(registry, key, name, scope, loose=key != 'model.type')


def _registered_parts(cfg) -> Iterator[_Entry]:
    """An :class:`_Entry` for each registry-built entry of ``cfg``."""
    yield from _model_parts(cfg.get('model'))
    for loader in _LOADERS:
        if cfg.get(loader):
            yield from _dataset_parts(cfg[loader].get('dataset'),
                                      f'{loader}.dataset')
    yield from _entries(HOOKS, cfg.get('custom_hooks'), 'custom_hooks')
    yield from _entries(HOOKS, cfg.get('default_hooks'), 'default_hooks')
    for evaluator in ('val_evaluator', 'test_evaluator'):
        yield from _entries(METRICS, cfg.get(evaluator), evaluator)
    optim = cfg.get('optim_wrapper') or {}
    if isinstance(optim.get('type'), str):
        yield _Entry(OPTIM_WRAPPERS, 'optim_wrapper.type', optim['type'])
    optimizer = optim.get('optimizer') or {}
    if isinstance(optimizer.get('type'), str):
        yield _Entry(OPTIMIZERS, 'optim_wrapper.optimizer.type',
                     optimizer['type'])
    schedulers = cfg.get('param_scheduler') or []
    schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
    for i, sched in enumerate(schedulers):
        if isinstance(sched, dict) and isinstance(sched.get('type'), str):
            yield _Entry(PARAM_SCHEDULERS, f'param_scheduler[{i}].type',
                         sched['type'])
    vis = cfg.get('visualizer') or {}
    if isinstance(vis.get('type'), str):
        yield _Entry(VISUALIZERS, 'visualizer.type', vis['type'])


def _all_registries() -> List[Registry]:
    return [
        r for r in vars(mmseg_registry).values() if isinstance(r, Registry)
    ]


def _lookup(registry: Registry, name: str) -> Any:
    """``registry.get(name)``, or None where it fails (mmengine raises for
    some unknown dotted names)."""
    try:
        return registry.get(name)
    except Exception:
        return None


def _scope_installed(scope: str) -> bool:
    """Whether package ``scope`` is installed (a bare folder of that name on
    ``sys.path``, which imports as a namespace package, does not count)."""
    try:
        spec = importlib.util.find_spec(scope)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin not in (None, 'namespace')


def _split_scope(registry: Registry, entry: _Entry):
    """(scope, name to look up, bare name); scope None for the registry's."""
    scope, bare = Registry.split_scope_key(entry.name)
    if scope is None and entry.scope and entry.scope != registry.scope:
        scope = entry.scope
    if scope == registry.scope:
        scope = None
    return scope, (f'{scope}.{bare}' if scope else entry.name), bare


def _scope_registry(registry: Registry, scope: str) -> Optional[Registry]:
    """The registry of ``scope`` that corresponds to ``registry``."""
    root = registry
    while root.parent is not None:
        root = root.parent
    child = root._children.get(scope)
    if child is not None:
        try:
            child.import_from_location()
        except Exception:
            pass
    return child


def _scope_import_error(registry: Registry, scope: str) -> Optional[str]:
    """Why the modules that register ``scope``'s components do not import
    (``Registry.get`` swallows that error), or None."""
    child = _scope_registry(registry, scope)
    locations = (child._locations if child is not None else []) or [
        f'{scope}.registry'
    ]
    for location in locations:
        try:
            importlib.import_module(location)
        except Exception as err:  # noqa: B902 (any import-time failure)
            return f'import {location}: {type(err).__name__}: {err}'
    return None


def install_hint(scope: str) -> str:
    """The command that installs the package of scope ``scope``."""
    package = MODULE2PACKAGE.get(scope, scope)
    return f'pip install {package} (or: mim install {package})'


def _check_custom_imports(cfg, missing: Dict[str, List[str]]) -> None:
    custom = cfg.get('custom_imports') or {}
    imports = custom.get('imports') or []
    imports = [imports] if isinstance(imports, str) else list(imports)
    if custom.get('allow_failed_imports', False):
        return
    for i, module in enumerate(imports):
        if not isinstance(module, str):
            continue
        package = module.split('.')[0]
        if not _scope_installed(package):
            missing.setdefault(package, []).append(
                f'  custom_imports.imports[{i}] = {module!r}')


def check_config(cfg, cfg_path: str = '<config>') -> None:
    """Raise :class:`ConfigError` for the type names in ``cfg`` that cannot
    be built: unknown names (with close registered names), and names whose
    scope's package is not installed (with the command that installs it)."""
    unknown: List[str] = []
    missing: Dict[str, List[str]] = {}  # package scope -> lines
    broken: Dict[str, List[str]] = {}  # import error -> lines
    _check_custom_imports(cfg, missing)
    for entry in _registered_parts(cfg):
        registry = entry.registry
        scope, name, bare = _split_scope(registry, entry)
        if _lookup(registry, name) is not None:
            continue
        if scope is not None and not _scope_installed(scope):
            missing.setdefault(scope, []).append(
                f'  {entry.key} = {entry.name!r}: needs the {scope!r} '
                'package, which is not installed.')
            continue
        error = _scope_import_error(registry, scope) if scope else None
        if error is not None:
            broken.setdefault(error, []).append(
                f'  {entry.key} = {entry.name!r}: the {scope!r} package is '
                'installed but does not import.')
            continue
        if entry.loose and any(
                _lookup(other, name) is not None
                for other in _all_registries() if other is not registry):
            continue
        where = _scope_registry(registry, scope) if scope else registry
        where = where if where is not None else registry
        close = difflib.get_close_matches(
            bare.split('::')[-1], _known_names(where), n=3, cutoff=0.6)
        hint = f' Did you mean {", ".join(close)}?' if close else ''
        scope_name = scope if scope else where.scope
        unknown.append(f'  {entry.key} = {entry.name!r}: not in the '
                       f'{scope_name}::{where.name} registry.{hint}')
    parts = []
    if unknown:
        parts.append(
            f'{cfg_path}: unknown component name(s)\n' + '\n'.join(unknown) +
            '\nFix: correct the name, or import the module that registers it '
            "(e.g. custom_imports = dict(imports=['rss_mmseg'], "
            'allow_failed_imports=False)).')
    for scope, lines in missing.items():
        package = MODULE2PACKAGE.get(scope, scope)
        parts.append(
            f'{cfg_path}: component(s) from the {package!r} package, which '
            'is not installed\n' + '\n'.join(lines) +
            f'\nFix: {install_hint(scope)}.')
    for error, lines in broken.items():
        parts.append(f'{cfg_path}: component(s) from a package that fails '
                     'to import\n' + '\n'.join(lines) +
                     f'\n{error}\nFix: install what that import needs.')
    if parts:
        raise ConfigError('\n'.join(parts))
