# Reward fine-tuning for mIoU with exact one-pixel credit against the
# batch's pooled mIoU, on the synthetic set (the synthetic counterpart of
# rss-finetune-miou-pooled_fast-scnn_1xb8-1k_camvid-176x240.py).
_base_ = './rss-finetune-miou-local_fast-scnn_1xb8-250_synthetic-128x128.py'
# measured with the mIoU over the union of classes (a sampled pixel of a
# class the batch lacks adds a zero-IoU class)
model = dict(
    decode_head=dict(
        reward=dict(classes='union'), loss=dict(pooled=True)))
