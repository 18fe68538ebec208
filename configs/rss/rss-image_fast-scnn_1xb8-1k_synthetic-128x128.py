# Image-level RSS on the synthetic set: the CE baseline's network trained from
# ONE scalar per image (the mIoU of a sampled segmentation against the hidden
# reference) with PSR (4 -> 8 -> 16 -> 32 grids, quarters of training), PSD (K
# = 8 samples, all pairs, credit on the cells where a pair differs) and SyncAN,
# plus a small entropy bonus (without it the policy collapses to the majority
# class within ~100 iterations: docs/method.md). Labels reach the gradient only
# through that scalar (LabelLeakCheckHook refuses the config otherwise).
_base_ = '../baselines/ce_fast-scnn_1xb8-1k_synthetic-128x128.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='RSSHead',
        head={{_base_.model.decode_head}},
        num_classes={{_base_.model.decode_head.num_classes}},
        reward=dict(type='ImageMIoUReward'),
        loss=dict(
            type='PSDLoss',
            pairs='all',
            normalize='syncan',
            entropy_weight=0.01),
        num_samples=8,
        scales=4))
custom_hooks = _base_.custom_hooks + [
    dict(type='ProgressiveScaleHook', scales=[4, 8, 16, 32]),
]
