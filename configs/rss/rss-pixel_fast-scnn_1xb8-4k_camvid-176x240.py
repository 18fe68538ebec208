# Pixel-level RSS on CamVid (11 classes, 176x240 crops): the CE baseline with
# its decode head trained from per-pixel rewards instead of cross-entropy.
# Everything else (data, model, schedule, seed) is inherited unchanged.
_base_ = '../baselines/ce_fast-scnn_1xb8-4k_camvid-176x240.py'
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
