# Reward fine-tuning for mIoU with exact one-pixel credit against the
# batch's pooled mIoU: as rss-finetune-miou-local, but each pixel is
# credited with its change of the mIoU of the batch's summed confusion
# counts (LocalExpectationLoss(pooled=True)) instead of its own image's. A
# class then weighs by its pixels over the batch, as in the dataset mIoU
# that validation reports; per image, a fragment of a few pixels of a class
# weighs like a whole class (its scaled gains reach hundreds).
_base_ = './rss-finetune-miou-local_fast-scnn_1xb8-1k_camvid-176x240.py'
# measured with the mIoU over the union of classes (a sampled pixel of a
# class the batch lacks adds a zero-IoU class)
model = dict(
    decode_head=dict(
        reward=dict(classes='union'), loss=dict(pooled=True)))
