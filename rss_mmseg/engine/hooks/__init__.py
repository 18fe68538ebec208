from .label_leak_check_hook import LabelLeakCheckHook, find_label_leaks
from .num_classes_check_hook import NumClassesCheckHook
from .policy_anchor_hook import PolicyAnchorHook
from .progressive_scale_hook import ProgressiveScaleHook
from .random_state_hook import RandomStateHook
from .require_checkpoint_hook import RequireCheckpointHook

__all__ = [
    'LabelLeakCheckHook', 'NumClassesCheckHook', 'PolicyAnchorHook',
    'ProgressiveScaleHook', 'RandomStateHook', 'RequireCheckpointHook',
    'find_label_leaks'
]
