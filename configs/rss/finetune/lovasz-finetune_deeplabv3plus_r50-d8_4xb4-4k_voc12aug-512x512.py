# Fine-tuning baseline at GPU scale: mmseg's differentiable IoU surrogate.
# The model-zoo DeepLabV3+ R50-D8 VOC12aug model fine-tuned with the
# Lovasz-softmax loss alone, per image, over the classes present (Berman et
# al., CVPR 2018, who fine-tune a CE model with it, on VOC among others),
# for the same 4k iterations, data and schedule as ce-continued (the VOC12aug
# counterpart of lovasz-finetune_fast-scnn_1xb8-1k_camvid-176x240.py).
#   bash tools/dist_train.sh configs/rss/finetune/lovasz-finetune_deeplabv3plus_r50-d8_4xb4-4k_voc12aug-512x512.py 4
_base_ = './ce-continued_deeplabv3plus_r50-d8_4xb4-4k_voc12aug-512x512.py'
model = dict(
    decode_head=dict(
        loss_decode=dict(
            _delete_=True,
            type='LovaszLoss',
            loss_type='multi_class',
            classes='present',
            per_image=True,
            reduction='mean',
            loss_weight=1.0)))
