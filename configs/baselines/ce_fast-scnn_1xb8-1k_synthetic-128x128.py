# Cross-entropy reference for the embedded synthetic set: the CamVid baseline's
# model and schedule on 128x128 textured shapes, 1k iterations.
_base_ = [
    '../_base_/models/fast_scnn.py', '../_base_/datasets/synthetic.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_poly.py'
]
crop_size = (128, 128)
max_iters = 1000
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=6))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=1e-4,
        power=0.9,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=250)
