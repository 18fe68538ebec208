# Reward fine-tuning for mIoU with exact one-pixel credit on the synthetic
# set: rss-finetune-miou's CE 1k model and budget, the image's mIoU over its
# reference's classes through LocalExpectationLoss, K = 2 sampled maps,
# every pixel a cell (the synthetic counterpart of
# rss-finetune-miou-local_fast-scnn_1xb8-1k_camvid-176x240.py).
_base_ = './rss-finetune-miou_fast-scnn_1xb8-250_synthetic-128x128.py'
model = dict(
    decode_head=dict(
        reward=dict(classes='reference'),
        loss=dict(
            _delete_=True, type='LocalExpectationLoss', normalize='cells'),
        num_samples=2))
