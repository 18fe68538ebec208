# rss-image-exact-credit-16 with mirror-descent steps of the exact credit
# (LocalExpectationLoss(step='mirror')): on the 16x16 and 32x32 grids each
# cell's logits move toward q ~ pi * exp(gain), a full step onto a class
# that gains much however unlikely it is, where the plain gradient is
# proportional to the class's probability. On bicyclist cells of
# rss-image's 32x32 grid the exact gains rank bicyclist first in every
# cell while the policy gives it ~1-2% (docs/method.md section 12, session
# 16). Image level with a CONFUSION reward, not a black-box one (see
# rss-image-exact-credit-32): benchmark level 'image (confusion oracle)'.
# Measured (session 16, resumed from the common 2k checkpoints of
# rss-image): 48.31 / 46.44 / 48.73 val mIoU at 4k on seeds 0 / 1 / 2,
# median 0.965x CE; bicyclist 10.3 / 7.1 / 8.3.
_base_ = './rss-image-exact-credit-16_fast-scnn_1xb8-4k_camvid-176x240.py'
model = dict(
    decode_head=dict(loss=[
        {{_base_.psd_loss}},
        dict(
            type='LocalExpectationLoss',
            normalize='cells',
            uniform_weight=0.003,
            step='mirror'),
    ]))
