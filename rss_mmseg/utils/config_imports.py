"""``custom_imports`` across ``_base_`` configs, merged the way mmseg needs.

mmengine merges a child config's ``custom_imports`` into its base's like any
dict, so the child's ``imports`` list *replaces* the base's: an RSS config on
top of a stock config that has its own ``custom_imports`` (mmseg's ConvNeXt
configs: ``imports='mmpretrain.models'``; PoolFormer; Mask2Former:
``'mmdet.models'``) must list the base's imports as well as ``'rss_mmseg'``,
or the components they register are missing at build time.

* :func:`rss_custom_imports` -- the ``imports`` list an RSS child of a base
  config should write (the base's imports, then ``'rss_mmseg'``);
* :func:`missing_base_imports` -- the imports of a config file's ``_base_``
  configs that its merged config lost;
* :func:`merged_custom_imports`, :func:`custom_imports_of`,
  :func:`base_config_paths`, :func:`base_custom_imports` -- the parts.
"""
import os.path as osp
from typing import Iterable, List, Optional, Sequence, Union

from mmengine.config import Config

RSS_IMPORT = 'rss_mmseg'

ConfigLike = Union[str, dict, Config]


def _as_list(imports: Union[None, str, Sequence[str]]) -> List[str]:
    """A string ``imports`` counts as a one-element list."""
    if imports is None:
        return []
    if isinstance(imports, str):
        return [imports]
    return list(imports)


def _unique(names: Iterable[str]) -> List[str]:
    """``names`` without repeats, first occurrences in order."""
    seen, out = set(), []
    for name in names:
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def resolve_config_path(path: str, parent: Optional[str] = None) -> str:
    """The file of a config reference: ``'mmseg::x/y.py'`` (in the installed
    package, via mmengine), or a path (relative to the directory of the
    config file ``parent`` when given, as ``_base_`` entries are)."""
    if '::' in path:
        # mmengine's own resolution of ``_base_`` entries (0.10.x).
        return Config._get_cfg_path(path, parent or '')[0]
    if parent is not None and not osp.isabs(path):
        path = osp.join(osp.dirname(parent), path)
    return osp.normpath(path)


def load_config(cfg: ConfigLike) -> Union[dict, Config]:
    """``cfg`` itself, or the config loaded from a path / ``mmseg::``
    reference without importing its ``custom_imports``."""
    if isinstance(cfg, str):
        return Config.fromfile(
            resolve_config_path(cfg), import_custom_modules=False)
    return cfg


def custom_imports_of(cfg: ConfigLike) -> List[str]:
    """The ``custom_imports.imports`` of a config (a ``Config``, a dict, a
    path or ``'mmseg::'`` reference) as a list; a ``custom_imports`` dict
    itself (``dict(imports=...)``) is accepted too."""
    cfg = load_config(cfg)
    if cfg is None:
        return []
    if 'imports' in cfg and 'custom_imports' not in cfg:
        return _as_list(cfg.get('imports'))
    custom = cfg.get('custom_imports') or {}
    return _as_list(custom.get('imports'))


def merged_custom_imports(base_cfgs: Iterable[ConfigLike],
                          own: Union[None, str, Sequence[str]] = None
                          ) -> List[str]:
    """The imports of every config in ``base_cfgs`` (configs, dicts or
    paths), then ``own``; without repeats, in that order."""
    names: List[str] = []
    for base in base_cfgs:
        names.extend(custom_imports_of(base))
    names.extend(_as_list(own))
    return _unique(names)


def rss_custom_imports(base_cfg: Union[ConfigLike, Iterable[ConfigLike]]
                       ) -> List[str]:
    """The ``custom_imports.imports`` an RSS config on top of ``base_cfg``
    (a config, a dict, a path or ``'mmseg::...'`` reference, the base's
    ``custom_imports`` dict, or a list of them, as ``_base_``) must write:
    the base's imports, then ``'rss_mmseg'``, without repeats.

    >>> rss_custom_imports('mmseg::convnext/convnext-tiny_upernet_'
    ...                    '8xb2-amp-160k_ade20k-512x512.py')
    ['mmpretrain.models', 'rss_mmseg']
    """
    bases = (list(base_cfg) if isinstance(base_cfg, (list, tuple)) else
             [base_cfg])
    return merged_custom_imports(bases, [RSS_IMPORT])


def base_config_paths(cfg_path: str) -> List[str]:
    """The files named by the ``_base_`` of the config file ``cfg_path``
    (a string or a list; ``mmseg::`` entries resolved in the installed
    package, the others relative to ``cfg_path``)."""
    cfg_path = resolve_config_path(cfg_path)
    # mmengine's own reading of ``_base_`` (py, yaml, json).
    return [
        resolve_config_path(base, cfg_path)
        for base in Config._get_base_files(cfg_path)
    ]


def base_custom_imports(cfg_path: str) -> List[str]:
    """The imports of the (merged) ``_base_`` configs of ``cfg_path``."""
    return merged_custom_imports(base_config_paths(cfg_path))


def missing_base_imports(cfg_path: str,
                         cfg: Optional[Union[dict, Config]] = None
                         ) -> List[str]:
    """The imports of ``cfg_path``'s ``_base_`` configs that are not in its
    merged config's imports (``cfg``: that config, if already loaded)."""
    if cfg is None:
        cfg = load_config(cfg_path)
    have = set(custom_imports_of(cfg))
    return [name for name in base_custom_imports(cfg_path) if name not in have]


__all__ = [
    'RSS_IMPORT', 'base_config_paths', 'base_custom_imports',
    'custom_imports_of', 'load_config', 'merged_custom_imports',
    'missing_base_imports', 'resolve_config_path', 'rss_custom_imports'
]
