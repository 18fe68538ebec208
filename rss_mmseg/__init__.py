"""rss-mmseg: Reward in Semantic Segmentation (RSS) for MMSegmentation.

Importing this package registers every component into mmseg's registries
(MODELS, DATASETS, TRANSFORMS, HOOKS, METRICS) and makes checkpoints written by
mmengine loadable under torch>=2.6 (see :mod:`rss_mmseg.compat.checkpoint`)
and crash-safe: written atomically, resumed from the newest loadable one
(:mod:`rss_mmseg.compat.crash_safe_checkpoint`).
Configs load it with::

    custom_imports = dict(imports=['rss_mmseg'], allow_failed_imports=False)

It also sets up the ``rss_mmseg`` config scope (:mod:`rss_mmseg.registry`),
so that a config outside this repository can inherit an installed one::

    _base_ = 'rss_mmseg::rss/rss-pixel_fast-scnn_1xb8-1k_synthetic-128x128.py'
"""
from . import registry  # noqa: F401  the rss_mmseg:: scope
from .compat import (install_crash_safe_checkpoints,
                     register_checkpoint_safe_globals)
from .datasets import *  # noqa: F401,F403
from .engine import *  # noqa: F401,F403
from .evaluation import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .version import __version__

register_checkpoint_safe_globals()
install_crash_safe_checkpoints()

__all__ = ['__version__', 'register_checkpoint_safe_globals']
