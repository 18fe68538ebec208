# Variant of rss-image with the PSR grids moved earlier: 4x4 until 250,
# 8x8 until 750, 16x16 until 2000, 32x32 after (rss-image: quarters of
# training). The poly schedule has taken the rate to 0.014 by 3k, so what
# the policy is at 3k is what it keeps (docs/method.md section 12, session
# 11): here the fine grids get the iterations while the rate is high.
_base_ = '../rss-image_fast-scnn_1xb8-4k_camvid-176x240.py'
custom_hooks = [
    h for h in _base_.custom_hooks if h['type'] != 'ProgressiveScaleHook'
] + [
    dict(
        type='ProgressiveScaleHook',
        scales=[4, 8, 16, 32],
        milestones=[250, 750, 2000]),
]
