# Fine-tuning baseline at GPU scale: cross-entropy continued from mmseg's
# model-zoo DeepLabV3+ R50-D8 (deeplabv3plus_r50-d8_4xb2-80k_cityscapes-
# 512x1024, zoo val mIoU 80.09), the CamVid set's recipe
# (ce-continued_fast-scnn_1xb8-1k_camvid-176x240.py) on the stock config: the
# same data, crops (512x1024) and batch (4 GPUs x 2 images), 8k iterations
# more (a tenth of the stock 80k), SGD restarted at lr 0.001 (a tenth of the
# stock 0.01) with poly decay to 2e-5 (a fiftieth of it, the CamVid
# fine-tuning's end-to-start ratio). The other *_cityscapes-512x1024.py
# configs in this folder inherit this one and change only the decode head's
# training signal, so they share data, budget and schedule.
# The auxiliary FCN head is dropped here too: the reward fine-tuning must drop
# it (trained with cross-entropy it would put pixel labels into the gradient;
# LabelLeakCheckHook refuses that), so for a fair comparison every config of
# the set fine-tunes the backbone through the decode head alone. The
# checkpoint's auxiliary-head weights go unused (mmengine lists them as
# unexpected keys when it loads the checkpoint).
# Validation and checkpoints every 2k iterations, reporting mIoU and the
# boundary F-score (BoundaryFScoreMetric) with an 8-pixel tolerance: CamVid's
# 2 pixels at 360x480 scaled by the image diagonal to the 1024x2048 label maps
# Cityscapes is scored at (2 x 2290 / 600 = 7.6).
#   bash tools/dist_train.sh configs/rss/finetune/ce-continued_deeplabv3plus_r50-d8_4xb2-8k_cityscapes-512x1024.py 4
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py'
custom_imports = dict(imports=['rss_mmseg'], allow_failed_imports=False)
# each rank samples its actions from its own random stream (one shared
# stream would give every GPU the same uniforms); the data sampler's seed
# stays common to all ranks
randomness = dict(seed=None, diff_rank_seed=True)
max_iters = 8000
# mmengine downloads it once into torch.hub's cache (~/.cache/torch/hub)
load_from = 'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3plus/deeplabv3plus_r50-d8_512x1024_80k_cityscapes/deeplabv3plus_r50-d8_512x1024_80k_cityscapes_20200606_114049-f9fb496d.pth'  # noqa
model = dict(auxiliary_head=None)
optim_wrapper = dict(optimizer=dict(lr=0.001))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=2e-5,
        power=0.9,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 4)
default_hooks = dict(checkpoint=dict(interval=max_iters // 4))
val_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='BoundaryFScoreMetric', tolerance=8),
]
test_evaluator = val_evaluator
custom_hooks = [
    dict(type='NumClassesCheckHook'),
    dict(type='LabelLeakCheckHook'),
    dict(type='RandomStateHook'),
    # with load_from=None (no download) it names the file to load instead
    dict(
        type='RequireCheckpointHook',
        hint='the mmseg model-zoo checkpoint ' + load_from),
]
