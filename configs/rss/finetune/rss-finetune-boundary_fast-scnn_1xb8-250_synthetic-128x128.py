# Reward fine-tuning for boundary quality on the synthetic set: as
# rss-finetune-miou, with the reward an equal mix of the image's mIoU and its
# mean boundary F-score (BoundaryFScoreReward over the set's 6 classes, 2-pixel
# tolerance); the synthetic counterpart of
# rss-finetune-boundary_fast-scnn_1xb8-1k_camvid-176x240.py. On this set no
# reference boundary is scored (see ce-continued_..._synthetic-128x128.py), so
# the boundary term only rewards samples without spurious boundaries.
_base_ = './rss-finetune-miou_fast-scnn_1xb8-250_synthetic-128x128.py'
model = dict(
    decode_head=dict(
        reward=dict(
            _delete_=True,
            type='WeightedSumReward',
            rewards=[
                dict(type='ImageMIoUReward', classes='union'),
                dict(type='BoundaryFScoreReward', num_classes=6, tolerance=2),
            ],
            weights=[0.5, 0.5])))
