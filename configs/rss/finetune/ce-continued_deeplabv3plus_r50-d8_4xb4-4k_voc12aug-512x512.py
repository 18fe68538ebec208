# Fine-tuning baseline at GPU scale: cross-entropy continued from mmseg's
# model-zoo DeepLabV3+ R50-D8 (deeplabv3plus_r50-d8_4xb4-40k_voc12aug-512x512,
# zoo val mIoU 76.81), the CamVid set's recipe
# (ce-continued_fast-scnn_1xb8-1k_camvid-176x240.py) on the stock config: the
# same data (VOC 2012 train + SBD aug), crops (512x512) and batch (4 GPUs x 4
# images), 4k iterations more (a tenth of the stock 40k), SGD restarted at
# lr 0.001 (a tenth of the stock 0.01) with poly decay to 2e-5 (a fiftieth
# of it, the CamVid fine-tuning's end-to-start ratio). The other
# *_voc12aug-512x512.py configs in this folder inherit this one and change
# only the decode head's training signal, so they share data, budget and
# schedule.
# The auxiliary FCN head is dropped here too: the reward fine-tuning must drop
# it (trained with cross-entropy it would put pixel labels into the gradient;
# LabelLeakCheckHook refuses that), so for a fair comparison every config of
# the set fine-tunes the backbone through the decode head alone. The
# checkpoint's auxiliary-head weights go unused (mmengine lists them as
# unexpected keys when it loads the checkpoint).
# Validation and checkpoints every 1k iterations, reporting mIoU only: VOC's
# val annotations mark a band around every object outline as ignored (255),
# and BoundaryFScoreMetric does not score pixels on or next to ignored ones,
# so hardly any reference boundary would be scored (the boundary F-score
# would count only spurious predicted boundaries off the band). Cityscapes
# is the boundary benchmark of the two.
#   bash tools/dist_train.sh configs/rss/finetune/ce-continued_deeplabv3plus_r50-d8_4xb4-4k_voc12aug-512x512.py 4
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-40k_voc12aug-512x512.py'
custom_imports = dict(imports=['rss_mmseg'], allow_failed_imports=False)
# each rank samples its actions from its own random stream (one shared
# stream would give every GPU the same uniforms); the data sampler's seed
# stays common to all ranks
randomness = dict(seed=None, diff_rank_seed=True)
max_iters = 4000
# mmengine downloads it once into torch.hub's cache (~/.cache/torch/hub)
load_from = 'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3plus/deeplabv3plus_r50-d8_512x512_40k_voc12aug/deeplabv3plus_r50-d8_512x512_40k_voc12aug_20200613_161759-e1b43aa9.pth'  # noqa
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
val_evaluator = [dict(type='IoUMetric', iou_metrics=['mIoU'])]
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
