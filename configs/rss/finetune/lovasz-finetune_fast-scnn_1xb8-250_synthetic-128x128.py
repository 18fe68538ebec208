# Fine-tuning baseline on the synthetic set: the CE 1k model fine-tuned with
# the Lovasz-softmax loss alone, per image, over the classes present, for the
# same 250 iterations and schedule as ce-continued (the synthetic counterpart
# of lovasz-finetune_fast-scnn_1xb8-1k_camvid-176x240.py).
_base_ = './ce-continued_fast-scnn_1xb8-250_synthetic-128x128.py'
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
