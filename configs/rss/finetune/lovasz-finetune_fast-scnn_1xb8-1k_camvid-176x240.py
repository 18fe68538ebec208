# Fine-tuning baseline: mmseg's differentiable IoU surrogate. The CE 4k model
# fine-tuned with the Lovasz-softmax loss alone, per image, over the classes
# present (Berman et al., CVPR 2018, who fine-tune a CE model with it), for
# the same 1k iterations and schedule as ce-continued.
_base_ = './ce-continued_fast-scnn_1xb8-1k_camvid-176x240.py'
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
