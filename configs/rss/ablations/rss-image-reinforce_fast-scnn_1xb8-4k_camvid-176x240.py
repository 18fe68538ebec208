# Ablation of rss-image: plain image-level REINFORCE. One sample per image
# at full resolution, advantage = reward minus the batch mean, normalized by
# the batch std (SyncAN); neither PSR nor PSD.
_base_ = '../rss-image_fast-scnn_1xb8-4k_camvid-176x240.py'
model = dict(
    decode_head=dict(
        num_samples=1,
        scales=None,
        loss=dict(
            _delete_=True,
            type='PSRRewardLoss',
            baseline='batch',
            normalize='syncan')))
custom_hooks = [
    h for h in _base_.custom_hooks if h['type'] != 'ProgressiveScaleHook'
]
