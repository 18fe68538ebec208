# rss-image with both changes of session 12 (docs/method.md section 12):
# the image reward is the sampled map's first-order share of the dataset
# mIoU (MarginalMIoUReward, see rss-image-marginal_...) and the PSR grids
# come earlier (4x4 until 250, 8x8 until 750, 16x16 until 2000, 32x32
# after; see rss-image-early-grids_...).
_base_ = './rss-image-early-grids_fast-scnn_1xb8-4k_camvid-176x240.py'
model = dict(
    decode_head=dict(
        reward=dict(_delete_=True, type='MarginalMIoUReward')))
