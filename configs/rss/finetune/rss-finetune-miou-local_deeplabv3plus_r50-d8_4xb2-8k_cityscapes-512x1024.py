# Reward fine-tuning for mIoU at GPU scale, the recommended recipe of
# rss-finetune-miou-local_fast-scnn_1xb8-1k_camvid-176x240.py on mmseg's
# model-zoo DeepLabV3+ R50-D8 Cityscapes model: the stock decode head wrapped
# in RSSHead and tuned with the image's mIoU over the classes of its
# reference through LocalExpectationLoss, for the same 8k iterations, data
# and schedule as ce-continued. Every pixel is a cell (no PSR grid: the
# model is already good at full resolution); for each of K = 2 sampled maps
# the reward of every one-pixel variant (every pixel set to every class, the
# others held) is computed exactly from the confusion counts, and each
# pixel's logits get the gradient of the expected reward over its own class.
# Labels reach the gradient only through reward values of whole maps (the
# auxiliary head is dropped, see ce-continued; LabelLeakCheckHook checks).
# Per GPU the one-pixel gains are a (K, B, C, H, W) = (2, 2, 19, 512, 1024)
# float32 tensor, 160 MB. The policy, the gains and the loss are float32
# under autocast too: -amp-8k_ is this config in mixed precision.
#   bash tools/dist_train.sh configs/rss/finetune/rss-finetune-miou-local_deeplabv3plus_r50-d8_4xb2-8k_cityscapes-512x1024.py 4
_base_ = './ce-continued_deeplabv3plus_r50-d8_4xb2-8k_cityscapes-512x1024.py'
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
