# Pixel-level RSS with an mmpretrain backbone on CamVid: the CE baseline
# (mmpretrain MobileNetV2 + SegformerHead) with its decode head trained from
# per-pixel rewards instead of cross-entropy; the Fast-SCNN pixel recipe.
_base_ = '../baselines/ce_mmpretrain-mobilenet-v2-0.5x_segformer-head_1xb8-2k_camvid-176x240.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='RSSHead',
        head={{_base_.model.decode_head}},
        num_classes={{_base_.model.decode_head.num_classes}},
        reward=dict(type='PixelMatchReward', correct=1.0, wrong=0.0),
        loss=dict(type='PixelRewardLoss', baseline='mean', iw_power=1.0),
        num_samples=1))
