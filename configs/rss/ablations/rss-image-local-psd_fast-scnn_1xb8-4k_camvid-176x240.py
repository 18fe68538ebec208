# Ablation of rss-image: PSD with local pair differences. Sample 0 is drawn
# from the cell policy; samples 1..31 are copies of it re-drawn inside one
# random block each (a quarter of the grid side: 1x1 cells on the 4x4 grid,
# 8x8 on the 32x32 one), and each is compared with sample 0 only
# (pairs='base'): the reward difference of a pair can only come from its
# block, so it is credited there alone. Everything else (reward, PSR grids,
# K = 32, group normalization, entropy bonus, uniform pull) is rss-image's,
# which compares all pairs of 32 independent samples.
_base_ = '../rss-image_fast-scnn_1xb8-4k_camvid-176x240.py'
model = dict(
    decode_head=dict(
        local_block=0.25,
        loss=dict(pairs='base')))
