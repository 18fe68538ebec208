# Variant of rss-image for the small classes: the image reward is half the
# mIoU over the reference's classes and half their mean recall. Recall does
# not charge a class for its false positives, so a sampled cell of a small
# class that the image contains (a bicyclist, a pedestrian) costs less when
# it misses and is credited as much when it hits; the mIoU half keeps false
# positives from being free. Both parts are scored from per-cell counts on
# the PSR grids (WeightedSumReward.score_cells). Everything else is
# rss-image's.
_base_ = '../rss-image_fast-scnn_1xb8-4k_camvid-176x240.py'
model = dict(
    decode_head=dict(
        reward=dict(
            _delete_=True,
            type='WeightedSumReward',
            rewards=[
                dict(type='ImageMIoUReward', classes='reference'),
                dict(type='ImageRecallReward'),
            ],
            weights=[0.5, 0.5])))
