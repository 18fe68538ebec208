# Variant of rss-image for the precision of small classes: the image reward
# is the sampled map's first-order share of the dataset mIoU
# (MarginalMIoUReward): each class's intersection minus its running IoU
# times its union, over the class's running union per image. Under the
# per-image mIoU over the reference's classes a small class pays on coarse
# cells (a pedestrian cell over a building) and its false positives in
# images without it are free; the session-11 model predicted pedestrian on
# 7x its area, 64% of it on buildings (docs/method.md section 12). Here a
# class's false positives cost as much as validation charges them, once the
# class is learned. Everything else is rss-image's.
_base_ = '../rss-image_fast-scnn_1xb8-4k_camvid-176x240.py'
model = dict(
    decode_head=dict(
        reward=dict(_delete_=True, type='MarginalMIoUReward')))
