# Ablation of rss-image: the finest PSR grid (32x32) in every step beside the
# scheduled one (4 -> 8 -> 16 -> 32), the head averaging their losses. On
# coarse grids a small class (pole, sign, bicyclist, pedestrian) is never a
# cell's majority, so sampling it only ever costs reward and its probability
# collapses before the grid gets fine; a 32x32 cell (5.5 x 7.5 px at
# 176x240) can be one from the first iteration. Everything else is
# rss-image's.
_base_ = '../rss-image_fast-scnn_1xb8-4k_camvid-176x240.py'
custom_hooks = [
    dict(hook, mixed_scales=[32])
    if hook['type'] == 'ProgressiveScaleHook' else hook
    for hook in _base_.custom_hooks
]
