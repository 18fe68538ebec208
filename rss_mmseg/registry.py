"""The ``rss_mmseg`` scope: what ``_base_ = 'rss_mmseg::...'`` needs.

rss_mmseg's components register into mmseg's registries. This module adds
what mmengine 0.10.7 needs to inherit a config from the *installed*
package, the way ``mmseg::`` works, e.g. in a project of your own::

    _base_ = 'rss_mmseg::rss/rss-pixel_fast-scnn_1xb8-1k_synthetic-128x128.py'

* ``MODULE2PACKAGE['rss_mmseg']``: mmengine resolves ``pkg::path`` only for
  the packages in that table (an assertion otherwise).
* one registry per mmseg registry, scope ``rss_mmseg``, child of mmseg's:
  mmengine puts ``_scope_='rss_mmseg'`` into every component dict it
  inherits through ``rss_mmseg::`` and builds it under that scope; the
  children hold nothing themselves and find every name in mmseg's (and so
  mmengine's) registries, where rss_mmseg registers its components.
* ``get_installed_path('rss_mmseg')`` answers the folder of the imported
  package: for an editable install (PEP 660) mmengine's own answer is
  ``site-packages/rss_mmseg``, which does not exist there.

The config files are found under ``rss_mmseg/.mim/configs`` (links to
``configs/`` in a checkout, copies in a wheel: ``setup.py``). Importing
``rss_mmseg`` does all of this; load such a config after ``import
rss_mmseg`` (``tools/train.py``, ``tools/test.py`` and ``mim train/test
rss_mmseg`` do).
"""
import os.path as osp

import mmengine.config.config as _mmengine_config
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.registry import Registry
from mmseg import registry as _mmseg

SCOPE = 'rss_mmseg'
PACKAGE_DIR = osp.dirname(osp.abspath(__file__))
# Importing rss_mmseg registers every component (into mmseg's registries).
_LOCATIONS = ['rss_mmseg']


def _child(name: str, parent: Registry) -> Registry:
    return Registry(
        name, parent=parent, scope=SCOPE, locations=list(_LOCATIONS))


RUNNERS = _child('runner', _mmseg.RUNNERS)
RUNNER_CONSTRUCTORS = _child('runner constructor',
                             _mmseg.RUNNER_CONSTRUCTORS)
LOOPS = _child('loop', _mmseg.LOOPS)
HOOKS = _child('hook', _mmseg.HOOKS)
DATASETS = _child('dataset', _mmseg.DATASETS)
DATA_SAMPLERS = _child('data sampler', _mmseg.DATA_SAMPLERS)
TRANSFORMS = _child('transform', _mmseg.TRANSFORMS)
MODELS = _child('model', _mmseg.MODELS)
MODEL_WRAPPERS = _child('model_wrapper', _mmseg.MODEL_WRAPPERS)
WEIGHT_INITIALIZERS = _child('weight initializer',
                             _mmseg.WEIGHT_INITIALIZERS)
OPTIMIZERS = _child('optimizer', _mmseg.OPTIMIZERS)
OPTIM_WRAPPERS = _child('optim_wrapper', _mmseg.OPTIM_WRAPPERS)
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    _mmseg.OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = _child('parameter scheduler', _mmseg.PARAM_SCHEDULERS)
METRICS = _child('metric', _mmseg.METRICS)
EVALUATOR = _child('evaluator', _mmseg.EVALUATOR)
TASK_UTILS = _child('task util', _mmseg.TASK_UTILS)
VISUALIZERS = _child('visualizer', _mmseg.VISUALIZERS)
VISBACKENDS = _child('vis_backend', _mmseg.VISBACKENDS)
LOG_PROCESSORS = _child('log_processor', _mmseg.LOG_PROCESSORS)
INFERENCERS = _child('inferencer', _mmseg.INFERENCERS)

MODULE2PACKAGE.setdefault(SCOPE, SCOPE)


def _patch_get_installed_path() -> None:
    """Answer rss_mmseg's own folder to mmengine's config loader."""
    original = _mmengine_config.get_installed_path
    if getattr(original, '_rss_mmseg', False):  # already patched
        return

    def get_installed_path(package: str) -> str:
        if package == SCOPE:
            return PACKAGE_DIR
        return original(package)

    get_installed_path._rss_mmseg = True
    get_installed_path.__doc__ = original.__doc__
    _mmengine_config.get_installed_path = get_installed_path


_patch_get_installed_path()

__all__ = [
    'SCOPE', 'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'DATASETS',
    'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS', 'MODEL_WRAPPERS',
    'WEIGHT_INITIALIZERS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'METRICS', 'EVALUATOR',
    'TASK_UTILS', 'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS', 'INFERENCERS'
]
