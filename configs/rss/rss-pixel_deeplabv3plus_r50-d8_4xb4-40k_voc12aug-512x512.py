# Pixel-level RSS for mmseg's DeepLabV3+ R50-D8,
# 4xb4-40k_voc12aug-512x512: the stock config with both heads trained
# from per-pixel rewards instead of cross-entropy.
# The auxiliary FCN head is kept (same architecture and compute as the stock
# model) and trained from the same kind of reward with the stock weight 0.4.
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-40k_voc12aug-512x512.py'
custom_imports = dict(imports=['rss_mmseg'], allow_failed_imports=False)
# each rank samples its actions from its own random stream (one shared
# stream would give every GPU the same uniforms); the data sampler's seed
# stays common to all ranks
randomness = dict(seed=None, diff_rank_seed=True)
model = dict(
    decode_head=dict(
        _delete_=True,
        type='RSSHead',
        head={{_base_.model.decode_head}},
        num_classes={{_base_.model.decode_head.num_classes}},
        reward=dict(type='PixelMatchReward', correct=1.0, wrong=0.0),
        loss=dict(type='PixelRewardLoss', baseline='mean', iw_power=1.0),
        num_samples=1),
    auxiliary_head=dict(
        _delete_=True,
        type='RSSHead',
        head={{_base_.model.auxiliary_head}},
        num_classes={{_base_.model.auxiliary_head.num_classes}},
        reward=dict(type='PixelMatchReward', correct=1.0, wrong=0.0),
        loss=dict(
            type='PixelRewardLoss',
            baseline='mean',
            iw_power=1.0,
            loss_weight=0.4),
        num_samples=1))
# the same guards as every RSS config: a head/dataset class-count mismatch
# stops the run, and checkpoints carry every RNG state (exact --resume)
custom_hooks = [
    dict(type='NumClassesCheckHook'),
    dict(type='RandomStateHook'),
]
