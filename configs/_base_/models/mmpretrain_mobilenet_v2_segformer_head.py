# An mmpretrain backbone in an mmseg segmentor, small enough to train from
# scratch on a CPU: mmpretrain's MobileNetV2 (width 0.5; stages 1, 2, 4, 6:
# 16, 16, 48, 160 channels at strides 4, 8, 16, 32) under mmseg's
# SegformerHead (all-MLP: each stage projected to 128 channels, fused at
# stride 4). Plain BN (one process), cross-entropy decode loss, no
# auxiliary head, so CE and RSS configs train exactly the same network.
# Configs using it import mmpretrain.models (custom_imports).
norm_cfg = dict(type='BN', requires_grad=True, momentum=0.01)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmpretrain.MobileNetV2',
        widen_factor=0.5,
        out_indices=(1, 2, 4, 6),
        norm_cfg=norm_cfg),
    decode_head=dict(
        type='SegformerHead',
        in_channels=[16, 16, 48, 160],
        in_index=[0, 1, 2, 3],
        channels=128,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
