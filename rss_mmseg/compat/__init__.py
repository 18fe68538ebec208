from .checkpoint import CHECKPOINT_SAFE_GLOBALS, register_checkpoint_safe_globals
from .crash_safe_checkpoint import (AtomicFile, AtomicLocalBackend,
                                    CheckpointLoadError, ResumeError,
                                    atomic_open,
                                    install_crash_safe_checkpoints)

__all__ = [
    'AtomicFile', 'AtomicLocalBackend', 'CHECKPOINT_SAFE_GLOBALS',
    'CheckpointLoadError', 'ResumeError', 'atomic_open',
    'install_crash_safe_checkpoints', 'register_checkpoint_safe_globals'
]
