"""rss-mmseg: Reward in Semantic Segmentation (RSS) for MMSegmentation.

Importing this package registers every component into mmseg's registries
(MODELS, DATASETS, TRANSFORMS, HOOKS) and makes checkpoints written by
mmengine loadable under torch>=2.6 (see :mod:`rss_mmseg.compat.checkpoint`).
Configs load it with::

    custom_imports = dict(imports=['rss_mmseg'], allow_failed_imports=False)
"""
from .compat import register_checkpoint_safe_globals
from .datasets import *  # noqa: F401,F403
from .engine import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .version import __version__

register_checkpoint_safe_globals()

__all__ = ['__version__', 'register_checkpoint_safe_globals']
