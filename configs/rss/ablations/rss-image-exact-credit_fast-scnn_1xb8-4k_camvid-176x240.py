# Diagnostic variant of rss-image: exact one-cell credit instead of PSD.
# LocalExpectationLoss scores, for each of K = 4 sampled maps, every one-cell
# variant (each cell of the PSR grid set to each class, the others held) from
# the per-cell confusion counts and gives each cell's logits the gradient of
# the expected reward over its own class: no sampling noise in a cell's own
# credit. It needs a confusion reward (here rss-image's mIoU over the
# reference's classes), i.e. cells x (C - 1) variant rewards per sample, which
# a black-box scorer cannot answer: it measures what PSD's sampled credit
# costs, it is not image-level RSS with a black-box reward. There is no
# entropy bonus (LocalExpectationLoss has none); the uniform pull stays.
# Measured (docs/method.md section 12, session 15): from scratch, seed 0,
# 46.59 at 4k; as the last quarter of rss-image (resumed from its 3k
# checkpoint) 47.41 / 45.48 / 47.59 on seeds 0 / 1 / 2.
_base_ = '../rss-image_fast-scnn_1xb8-4k_camvid-176x240.py'
model = dict(
    decode_head=dict(
        loss=dict(
            _delete_=True,
            type='LocalExpectationLoss',
            normalize='cells',
            uniform_weight=0.003),
        num_samples=4))
