# Cross-entropy reference for CamVid: Fast-SCNN from scratch, 180x240 resize,
# 176x240 crop + flip, batch 8, SGD lr 0.05 momentum 0.9 with poly decay, 4k
# iterations. Every RSS CamVid config differs from this one in head/loss only.
_base_ = [
    '../_base_/models/fast_scnn.py', '../_base_/datasets/camvid.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_poly.py'
]
crop_size = (176, 240)
max_iters = 4000
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
train_cfg = dict(max_iters=max_iters, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval=1000))
