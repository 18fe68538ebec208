# Variant of rss-image-marginal-early-grids: on the finest (32x32) grid,
# from iteration 2000, neither the entropy bonus nor the pull toward the
# uniform policy acts (ProgressiveScaleHook entropy_weights and
# uniform_weights, 0 on the last scale). With both the cell entropy rose
# from ~0.3 to 0.6-0.8 nats on that grid while one image reward credits
# each of 1024 cells; without them it stays at ~0.2 (docs/method.md
# section 12, session 14).
_base_ = './rss-image-marginal-early-grids_fast-scnn_1xb8-4k_camvid-176x240.py'
custom_hooks = [
    dict(
        hook,
        uniform_weights=[0.003, 0.003, 0.003, 0.0],
        entropy_weights=[0.01, 0.01, 0.01, 0.0])
    if hook['type'] == 'ProgressiveScaleHook' else hook
    for hook in _base_.custom_hooks
]
