# mmseg's runtime + rss_mmseg's registrations and up-front checks.
_base_ = 'mmseg::_base_/default_runtime.py'

custom_imports = dict(imports=['rss_mmseg'], allow_failed_imports=False)
custom_hooks = [
    dict(type='NumClassesCheckHook'),
    dict(type='LabelLeakCheckHook'),
    # RNG states in checkpoints, so --resume continues exactly
    dict(type='RandomStateHook'),
]
randomness = dict(seed=0)
