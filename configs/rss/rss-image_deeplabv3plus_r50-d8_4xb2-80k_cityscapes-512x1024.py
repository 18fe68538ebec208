# Image-level RSS for mmseg's DeepLabV3+ R50-D8, 4xb2-80k_cityscapes-512x1024:
# the stock config trained from one mIoU reward per sampled segmentation, with
# PSR (8 -> 16 -> 32 -> 64 grids over quarters of training) and PSD (K = 32
# samples, all pairs, pair advantages divided by the std of the image's
# rewards, credit per differing cell relative to the mean differing region,
# which is all-reduced over the GPUs), mIoU over the reference's classes and
# a weak pull toward uniform (0.003), the CamVid recipe. The auxiliary FCN
# head is dropped: trained with cross-entropy it would put pixel labels into
# the gradient (LabelLeakCheckHook refuses that). The grid schedule
# extrapolates the CamVid one (cells of ~5-8 pixels at the end) and has not
# been tuned at this scale.
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py'
custom_imports = dict(imports=['rss_mmseg'], allow_failed_imports=False)
# each rank samples its actions from its own random stream (one shared
# stream would give every GPU the same uniforms); the data sampler's seed
# stays common to all ranks
randomness = dict(seed=None, diff_rank_seed=True)
model = dict(
    auxiliary_head=None,
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
        scales=8))
custom_hooks = [
    dict(type='NumClassesCheckHook'),
    dict(type='LabelLeakCheckHook'),
    dict(type='RandomStateHook'),
    dict(type='ProgressiveScaleHook', scales=[8, 16, 32, 64]),
]
