# Image-level RSS with an mmpretrain backbone on CamVid: the CE baseline
# (mmpretrain MobileNetV2 + SegformerHead) trained from one mIoU reward per
# sampled segmentation, with the Fast-SCNN image recipe unchanged (PSR
# 4 -> 8 -> 16 -> 32 grids over quarters of training, all-pairs PSD with
# K = 32, group normalization, mIoU over the reference's classes, entropy
# bonus 0.01, uniform pull 0.003). Labels reach the gradient only through
# that scalar (LabelLeakCheckHook).
_base_ = '../baselines/ce_mmpretrain-mobilenet-v2-0.5x_segformer-head_1xb8-2k_camvid-176x240.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='RSSHead',
        head={{_base_.model.decode_head}},
        num_classes={{_base_.model.decode_head.num_classes}},
        reward=dict(type='ImageMIoUReward', classes='reference'),
        loss=dict(
            type='PSDLoss',
            pairs='all',
            region_norm='mean',
            normalize='group',
            entropy_weight=0.01,
            uniform_weight=0.003),
        num_samples=32,
        scales=4))
custom_hooks = _base_.custom_hooks + [
    dict(type='ProgressiveScaleHook', scales=[4, 8, 16, 32]),
]
