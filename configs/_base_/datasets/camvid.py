# CamVid (SegNet split), 11 classes, void -> 255. Convert the SegNet folder
# first: python tools/dataset_converters/camvid.py SEGNET_CAMVID -o data/camvid
# Images are resized from 360x480 to 180x240 and cropped to 176x240; val
# predictions are scored at the original 360x480.
dataset_type = 'CamVidDataset'
data_root = 'data/camvid'
img_scale = (240, 180)  # (w, h), mmseg convention
crop_size = (176, 240)  # (h, w)
# CheckedLoad*: a bad image or label file fails naming the file. The test
# pipeline keeps mmcv's image loader: MMSegInferencer finds it by type name.
train_pipeline = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='CheckedLoadAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    # labels are loaded after Resize: mIoU is computed at full resolution
    dict(type='CheckedLoadAnnotations'),
    dict(type='PackSegInputs')
]
img_ratios = [0.75, 1.0, 1.25]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[[
            dict(type='Resize', scale_factor=r / 2, keep_ratio=True)
            for r in img_ratios
        ],
                    [
                        dict(type='RandomFlip', prob=0., direction='horizontal'),
                        dict(type='RandomFlip', prob=1., direction='horizontal')
                    ], [dict(type='CheckedLoadAnnotations')],
                    [dict(type='PackSegInputs')]])
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
