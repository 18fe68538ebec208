# Reward fine-tuning for boundary quality: as rss-finetune-miou, with the
# reward an equal mix of the image's mIoU and its mean boundary F-score
# (BoundaryFScoreReward: class boundaries matched within 2 pixels), so
# outlines are traced better without giving up region accuracy.
_base_ = './rss-finetune-miou_fast-scnn_1xb8-1k_camvid-176x240.py'
model = dict(
    decode_head=dict(
        reward=dict(
            _delete_=True,
            type='WeightedSumReward',
            rewards=[
                dict(type='ImageMIoUReward', classes='union'),
                dict(
                    type='BoundaryFScoreReward', num_classes=11, tolerance=2),
            ],
            weights=[0.5, 0.5])))
