# Reward fine-tuning for mIoU with exact one-pixel credit on the synthetic
# set: the CE 1k model tuned with the image's mIoU through
# LocalExpectationLoss, K = 2 sampled maps, every pixel a cell (the
# synthetic counterpart of
# rss-finetune-miou-local_fast-scnn_1xb8-1k_camvid-176x240.py).
_base_ = './ce-continued_fast-scnn_1xb8-250_synthetic-128x128.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='RSSHead',
        head={{_base_.model.decode_head}},
        num_classes={{_base_.model.decode_head.num_classes}},
        reward=dict(type='ImageMIoUReward', classes='reference'),
        loss=dict(type='LocalExpectationLoss', normalize='cells'),
        num_samples=2,
        scales=None))
