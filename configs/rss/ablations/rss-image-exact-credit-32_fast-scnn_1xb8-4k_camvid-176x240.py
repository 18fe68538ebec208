# rss-image with exact one-cell credit on its finest grid only: PSD (K = 32,
# all pairs) on the 4x4, 8x8 and 16x16 grids as in rss-image, then
# LocalExpectationLoss (K = 4) on the 32x32 grid of the last quarter, where
# PSD's pairs differ on 15-31% of the cells and the policy entropy rose
# while the quarter added nothing (docs/method.md section 12). The switch is
# ProgressiveScaleHook's loss_names / num_samples. Exact credit scores every
# one-cell variant of a sample from the per-cell confusion counts, so this is
# image level with a CONFUSION reward (the scorer must answer cells x (C - 1)
# variant queries in closed form), not with a black-box scorer: benchmark
# level 'image (confusion oracle)'. Measured (docs/method.md section 12,
# sessions 15-16): 47.41 / 45.48 / 47.59 val mIoU at 4k on seeds 0 / 1 / 2,
# median 0.947x CE (seed 1 from scratch; seeds 0 and 2 resumed from
# rss-image's 3k checkpoints, which this config repeats to the digit).
_base_ = '../rss-image_fast-scnn_1xb8-4k_camvid-176x240.py'
psd_loss = {{_base_.model.decode_head.loss}}  # rss-image's PSD
model = dict(
    decode_head=dict(loss=[
        psd_loss,
        dict(
            type='LocalExpectationLoss',
            normalize='cells',
            uniform_weight=0.003),
    ]))
custom_hooks = [
    dict(
        hook,
        loss_names=[['loss_psd'], ['loss_psd'], ['loss_psd'], ['loss_local']],
        num_samples=[32, 32, 32, 4])
    if hook['type'] == 'ProgressiveScaleHook' else hook
    for hook in _base_.custom_hooks
]
