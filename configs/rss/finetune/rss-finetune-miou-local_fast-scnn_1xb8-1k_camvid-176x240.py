# Reward fine-tuning for mIoU with exact one-cell credit: the CE 4k model
# tuned with the image's mIoU over the classes of its reference (as
# LovaszLoss(classes='present') averages them; a false positive of an absent
# class costs the pixels it takes from the true class) through
# LocalExpectationLoss. Every pixel is a cell; for each of K
# = 2 sampled maps the reward of every one-pixel variant (every pixel set to
# every class, the others held) is computed exactly from the confusion
# counts, and each pixel's logits get the gradient of the expected reward
# over its own class. A sharp policy's samples hardly differ, which starves
# sampled pair comparisons (rss-finetune-miou); this credit does not depend
# on them. Labels reach the gradient only through reward values of whole
# maps.
_base_ = './rss-finetune-miou_fast-scnn_1xb8-1k_camvid-176x240.py'
model = dict(
    decode_head=dict(
        reward=dict(classes='reference'),
        loss=dict(
            _delete_=True, type='LocalExpectationLoss', normalize='cells'),
        num_samples=2))
