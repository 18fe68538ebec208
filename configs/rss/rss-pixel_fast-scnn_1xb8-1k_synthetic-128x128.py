# Pixel-level RSS on the embedded synthetic set: the CE baseline with its
# decode head trained from per-pixel rewards instead of cross-entropy.
# Everything else (data, model, schedule, seed) is inherited unchanged.
_base_ = '../baselines/ce_fast-scnn_1xb8-1k_synthetic-128x128.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='RSSHead',
        # the baseline's Fast-SCNN head, as is (its CE loss_decode is
        # removed by RSSHead and never used)
        head={{_base_.model.decode_head}},
        num_classes={{_base_.model.decode_head.num_classes}},
        reward=dict(type='PixelMatchReward', correct=1.0, wrong=0.0),
        # importance-weighted reward, mean baseline: CE's gradient in
        # expectation (docs/method.md)
        loss=dict(type='PixelRewardLoss', baseline='mean', iw_power=1.0),
        num_samples=1,
        temperature=1.0,
        uniform_mix=0.0))
