# Reward fine-tuning for mIoU on the synthetic set: the CE 1k model tuned with
# the image's mIoU over the classes of the reference or the sample, K = 8
# full-resolution samples per image, PSD over all pairs, no PSR grid (the
# synthetic counterpart of
# rss-finetune-miou_fast-scnn_1xb8-1k_camvid-176x240.py).
_base_ = './ce-continued_fast-scnn_1xb8-250_synthetic-128x128.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='RSSHead',
        head={{_base_.model.decode_head}},
        num_classes={{_base_.model.decode_head.num_classes}},
        reward=dict(type='ImageMIoUReward', classes='union'),
        loss=dict(
            type='PSDLoss',
            pairs='all',
            region_norm='mean',
            normalize='group'),
        num_samples=8,
        scales=None))
