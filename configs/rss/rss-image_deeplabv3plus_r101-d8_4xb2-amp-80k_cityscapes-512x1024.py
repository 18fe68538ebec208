# Image-level RSS for mmseg's DeepLabV3+ R101-D8, 4xb2-amp-80k_cityscapes-512x1024,
# built as mmseg builds that config: the R50 RSS config with a ResNet-101
# backbone (ImageNet V1c weights), then mixed precision (AmpOptimWrapper,
# fp16 autocast, static loss scale 512, SGD lr 0.01 as the stock config).
# The heads learn from one mIoU reward per image (PSR + PSD, as the R50 config).
_base_ = './rss-image_deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py'
model = dict(pretrained='open-mmlab://resnet101_v1c', backbone=dict(depth=101))
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005)
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=optimizer,
    loss_scale=512.)
