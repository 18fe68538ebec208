# Reward fine-tuning with a KL anchor to the starting model: rss-finetune-
# miou-local (the CE 4k model tuned for the image's mIoU over its reference's
# classes through LocalExpectationLoss) plus anchor_weight * KL(pi_theta ||
# pi_start), the mean over the batch and the pixels of the head's output, as
# RL fine-tuning of language models anchors to its starting model.
# PolicyAnchorHook builds a frozen copy of the starting model from load_from
# (on --resume, from the starting checkpoint recorded in the resumed one) and
# RSSEncoderDecoder runs it on every batch: images only, no labels. The copy
# runs the policy's training forward (BatchNorm on batch statistics, the same
# dropout masks), so the KL is 0 at the start and measures only how far the
# weights moved. Weight 1.0, from the gradients on the head's logits
# (per-pixel norm, anchor / reward): 0.04 after 5 unanchored SGD steps (KL
# 1e-4), 0.25 after 20 (KL 0.0025), 0.85 at the drift an unanchored 1k run
# reaches (KL 0.030 at iterations 750 and 1000): noticeable early, at par
# only where the unanchored policy ends up, and nearly orthogonal to the
# reward's gradient (cosine -0.1): it pulls back drift the reward does not
# ask for.
_base_ = './rss-finetune-miou-local_fast-scnn_1xb8-1k_camvid-176x240.py'
model = dict(type='RSSEncoderDecoder', decode_head=dict(anchor_weight=1.0))
custom_hooks = _base_.custom_hooks + [dict(type='PolicyAnchorHook')]
