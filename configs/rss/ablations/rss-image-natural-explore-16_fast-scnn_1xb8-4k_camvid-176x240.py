# rss-image-natural-16 (black-box reward) with exploration on the 16x16 and
# 32x32 grids: the head samples from q = 0.9 pi + 0.1 uniform there
# (ProgressiveScaleHook(uniform_mixes=...)), so every class is tried at
# 0.1 / C per cell, and each cell's credit is weighted by pi / q; natural
# steps with natural_floor=0.01. It tests whether bicyclist, never sampled
# on its cells by the policy, is learned once it is sampled there.
# Measured (session 18, resumed from rss-image's 2k checkpoints): 44.89 /
# 43.31 / 45.41 val mIoU at 4k on seeds 0 / 1 / 2, median 0.897x CE, below
# natural-16 (48.10 / 46.36 / 48.03); bicyclist still 0 (docs/method.md
# section 12). Kept as the measured negative result.
_base_ = './rss-image-natural-16_fast-scnn_1xb8-4k_camvid-176x240.py'
model = dict(
    decode_head=dict(loss=[
        _base_.psd_loss,
        dict(_base_.natural_loss, natural_floor=0.01)
    ]))
custom_hooks = [
    dict(hook, uniform_mixes=[0.0, 0.0, 0.1, 0.1])
    if hook['type'] == 'ProgressiveScaleHook' else hook
    for hook in _base_.custom_hooks
]
