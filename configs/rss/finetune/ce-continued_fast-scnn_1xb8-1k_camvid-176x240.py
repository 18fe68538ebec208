# Fine-tuning baseline: cross-entropy continued. Starts from the CE 4k
# checkpoint (configs/baselines/ce_fast-scnn_1xb8-4k_camvid-176x240.py) and
# trains 1k more iterations on the same data and batch, SGD restarted at lr
# 0.005 with poly decay to 1e-4. Every fine-tuning config in this folder
# inherits this one and changes only the head's training signal, so they
# share data, budget and schedule. Validation reports mIoU and the boundary
# F-score (BoundaryFScoreMetric, 2-pixel tolerance at 360x480).
#   python tools/train.py configs/rss/finetune/ce-continued_fast-scnn_1xb8-1k_camvid-176x240.py \
#       --cfg-options load_from=work_dirs/ce_fast-scnn_1xb8-4k_camvid-176x240/iter_4000.pth
_base_ = '../../baselines/ce_fast-scnn_1xb8-4k_camvid-176x240.py'
max_iters = 1000
load_from = None  # required: RequireCheckpointHook stops the run without it
optim_wrapper = dict(optimizer=dict(lr=0.005))
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
default_hooks = dict(checkpoint=dict(interval=250))
val_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='BoundaryFScoreMetric', tolerance=2),
]
test_evaluator = val_evaluator
custom_hooks = _base_.custom_hooks + [
    dict(
        type='RequireCheckpointHook',
        hint='train one with python tools/train.py '
        'configs/baselines/ce_fast-scnn_1xb8-4k_camvid-176x240.py'),
]
