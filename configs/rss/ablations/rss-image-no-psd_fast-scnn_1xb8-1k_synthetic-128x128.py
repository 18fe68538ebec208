# Ablation of rss-image: PSR without PSD. Same grids and K = 8 samples, but
# every cell of every sample is credited with its group-normalized image
# advantage (the prototype's 0.81x variant) instead of pair differences.
_base_ = '../rss-image_fast-scnn_1xb8-1k_synthetic-128x128.py'
model = dict(
    decode_head=dict(
        loss=dict(
            _delete_=True,
            type='PSRRewardLoss',
            baseline='group',
            normalize='group',
            entropy_weight=0.01)))
