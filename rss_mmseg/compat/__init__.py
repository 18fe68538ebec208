from .checkpoint import CHECKPOINT_SAFE_GLOBALS, register_checkpoint_safe_globals

__all__ = ['CHECKPOINT_SAFE_GLOBALS', 'register_checkpoint_safe_globals']
