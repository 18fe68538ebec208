# Fine-tuning baseline on the embedded synthetic set: cross-entropy continued.
# The synthetic counterpart of ce-continued_fast-scnn_1xb8-1k_camvid-176x240.py
# (and what `tools/benchmark.py --quick` fine-tunes): starts from the CE 1k
# checkpoint (configs/baselines/ce_fast-scnn_1xb8-1k_synthetic-128x128.py) and
# trains a quarter of that schedule more, 250 iterations, SGD restarted at lr
# 0.005 with poly decay to 1e-4. The other *_synthetic-128x128.py configs in
# this folder inherit this one and change only the head's training signal.
# Note: the synthetic labels ignore a band around every object, and pixels on
# or next to ignored ones are not scored, so no reference boundary is scored
# there: mBFscore only counts spurious predicted boundaries (a smoke test of
# the pipeline; CamVid is the boundary benchmark).
#   python tools/train.py configs/rss/finetune/ce-continued_fast-scnn_1xb8-250_synthetic-128x128.py \
#       --cfg-options load_from=work_dirs/ce_fast-scnn_1xb8-1k_synthetic-128x128/iter_1000.pth
_base_ = '../../baselines/ce_fast-scnn_1xb8-1k_synthetic-128x128.py'
max_iters = 250
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
train_cfg = dict(max_iters=max_iters, val_interval=50)
default_hooks = dict(checkpoint=dict(interval=50))
val_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='BoundaryFScoreMetric', tolerance=2),
]
test_evaluator = val_evaluator
custom_hooks = _base_.custom_hooks + [
    dict(
        type='RequireCheckpointHook',
        hint='train one with python tools/train.py '
        'configs/baselines/ce_fast-scnn_1xb8-1k_synthetic-128x128.py'),
]
