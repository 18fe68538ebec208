# Ablation of rss-image: PSD's pair advantages divided by their root mean
# square over the valid pairs of the whole (distributed) batch, SyncAN,
# instead of by the std of each image's own K rewards (normalize='group').
# SyncAN's statistics are all-reduced over the ranks, so one process with
# batch 8 normalizes exactly as 2 processes with 4 images each
# (tests/tools/test_dist_train.py checks that equality inside a real
# 2-process run). Everything else is rss-image's.
_base_ = '../rss-image_fast-scnn_1xb8-4k_camvid-176x240.py'
model = dict(decode_head=dict(loss=dict(normalize='syncan')))
