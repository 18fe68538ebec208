# Ablation of rss-image: PSD without PSR (actions at full
# resolution from the first iteration).
_base_ = '../rss-image_fast-scnn_1xb8-4k_camvid-176x240.py'
model = dict(decode_head=dict(scales=None))
custom_hooks = [
    h for h in _base_.custom_hooks if h['type'] != 'ProgressiveScaleHook'
]
