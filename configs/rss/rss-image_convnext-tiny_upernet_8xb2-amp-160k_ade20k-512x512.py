# image-level RSS version of mmseg::convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py
# (written by tools/misc/rss_config.py). The heads are trained from
# one mIoU reward per image (PSR grids 8 -> 16 -> 32 -> 64, PSD) instead of labels; everything else is inherited unchanged.
_base_ = 'mmseg::convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py'
custom_hooks = [
    dict(type='NumClassesCheckHook'),
    dict(type='RandomStateHook'),
    dict(type='LabelLeakCheckHook'),
    dict(scales=[
        8,
        16,
        32,
        64,
    ], type='ProgressiveScaleHook'),
]
custom_imports = dict(
    allow_failed_imports=False, imports=[
        'mmpretrain.models',
        'rss_mmseg',
    ])
model = dict(
    auxiliary_head=None,
    decode_head=dict(
        _delete_=True,
        head=dict(
            align_corners=False,
            channels=512,
            dropout_ratio=0.1,
            in_channels=[
                96,
                192,
                384,
                768,
            ],
            in_index=[
                0,
                1,
                2,
                3,
            ],
            loss_decode=dict(
                loss_weight=1.0, type='CrossEntropyLoss', use_sigmoid=False),
            norm_cfg=dict(requires_grad=True, type='SyncBN'),
            num_classes=150,
            pool_scales=(
                1,
                2,
                3,
                6,
            ),
            type='UPerHead'),
        loss=dict(
            entropy_weight=0.01,
            normalize='group',
            pairs='all',
            region_norm='mean',
            type='PSDLoss',
            uniform_weight=0.003),
        num_classes=150,
        num_samples=32,
        reward=dict(classes='reference', type='ImageMIoUReward'),
        scales=8,
        type='RSSHead'))
randomness = dict(diff_rank_seed=True, seed=None)
