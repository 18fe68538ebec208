# Ablation of rss-image (synthetic): PSR without PSD. Same grids and K = 32
# samples; each sample's image advantage is taken against the mean reward of
# the whole batch (SyncAN) instead of comparing the samples of the same image.
_base_ = '../rss-image_fast-scnn_1xb8-1k_synthetic-128x128.py'
model = dict(
    decode_head=dict(
        loss=dict(
            _delete_=True,
            type='PSRRewardLoss',
            baseline='batch',
            normalize='syncan',
            entropy_weight=0.01)))
