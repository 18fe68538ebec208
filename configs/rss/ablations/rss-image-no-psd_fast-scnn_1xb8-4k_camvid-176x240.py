# Ablation of rss-image: PSR without PSD. Same grids, K = 32 samples, reward,
# entropy bonus and uniform pull, but every cell of every sample is credited
# with its group-normalized image advantage (the prototype's 0.81x variant at
# K = 8) instead of pair differences weighted by the region where a pair
# differs.
_base_ = '../rss-image_fast-scnn_1xb8-4k_camvid-176x240.py'
model = dict(
    decode_head=dict(
        loss=dict(
            _delete_=True,
            type='PSRRewardLoss',
            baseline='group',
            normalize='group',
            entropy_weight=0.01,
            uniform_weight=0.003)))
