# Reward fine-tuning for boundary quality with exact one-pixel credit: as
# rss-finetune-miou-local (LocalExpectationLoss, K = 2 sampled maps, every
# pixel a cell), with the reward an equal mix of the image's mIoU and its
# mIoU on the boundary band: the reference pixels within 1 pixel of a
# reference class boundary at the 176x240 training size, about the 2 pixels
# at 360x480 within which BoundaryFScoreMetric matches boundaries
# (ImageMIoUReward(band=1)). Both are confusion rewards, so every pixel's
# gain is exact; the boundary F-score itself is not (a flipped pixel
# changes the edges and matches of its neighbourhood), which is why
# rss-finetune-boundary needs sampled pairs. Labels reach the gradient only
# through reward values of whole maps.
_base_ = './rss-finetune-miou-local_fast-scnn_1xb8-1k_camvid-176x240.py'
model = dict(
    decode_head=dict(
        reward=dict(
            _delete_=True,
            type='WeightedSumReward',
            rewards=[
                dict(type='ImageMIoUReward', classes='reference'),
                dict(type='ImageMIoUReward', classes='reference', band=1),
            ],
            weights=[0.5, 0.5])))
