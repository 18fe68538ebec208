# Reward fine-tuning for mIoU: the CE 4k model tuned with the metric itself.
# One reward per image and sample (the image's mIoU over the classes of the
# reference or the sample, so a stray pixel of an absent class costs a
# zero-IoU class), K = 8 full-resolution samples per image, compared in pairs
# and credited where they differ (PSD): a sharp policy's samples differ only
# where it is unsure, so each pair's reward difference lands on those pixels.
# No PSR grid (the policy is already good at full resolution), no entropy
# bonus. Labels reach the gradient only through the scalar reward.
_base_ = './ce-continued_fast-scnn_1xb8-1k_camvid-176x240.py'
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
