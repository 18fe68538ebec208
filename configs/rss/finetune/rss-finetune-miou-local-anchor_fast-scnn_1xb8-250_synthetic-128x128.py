# Reward fine-tuning with a KL anchor to the starting model on the synthetic
# set: rss-finetune-miou-local's CE 1k model, reward and budget plus
# anchor_weight * KL(pi_theta || pi_start) to the frozen CE model, built by
# PolicyAnchorHook from load_from and run by RSSEncoderDecoder on every
# batch (the synthetic counterpart of
# rss-finetune-miou-local-anchor_fast-scnn_1xb8-1k_camvid-176x240.py).
_base_ = './rss-finetune-miou-local_fast-scnn_1xb8-250_synthetic-128x128.py'
model = dict(type='RSSEncoderDecoder', decode_head=dict(anchor_weight=1.0))
custom_hooks = _base_.custom_hooks + [dict(type='PolicyAnchorHook')]
