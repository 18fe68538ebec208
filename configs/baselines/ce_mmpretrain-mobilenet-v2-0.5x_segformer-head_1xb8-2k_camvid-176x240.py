# Cross-entropy reference with an mmpretrain backbone on CamVid: mmpretrain's
# MobileNetV2 (width 0.5) + mmseg's SegformerHead from scratch, with the data, batch,
# optimizer and schedule shape of the Fast-SCNN CamVid baseline (176x240
# crops, batch 8, SGD lr 0.05 momentum 0.9, poly decay) over 2k iterations
# (half the Fast-SCNN budget, to fit CPU time).
# The RSS configs with this backbone differ from it in head/loss only.
_base_ = [
    '../_base_/models/mmpretrain_mobilenet_v2_segformer_head.py',
    '../_base_/datasets/camvid.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_poly.py'
]
# mmengine replaces lists: the model's mmpretrain import and the runtime's
# rss_mmseg import are both listed
custom_imports = dict(
    imports=['mmpretrain.models', 'rss_mmseg'], allow_failed_imports=False)
crop_size = (176, 240)
max_iters = 2000
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=11))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=1e-4,
        power=0.9,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=500)
default_hooks = dict(checkpoint=dict(interval=500))
