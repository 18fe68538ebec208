# rss-image-natural-16 (black-box reward) with the natural PSD step sixteen
# times as large (loss_weight=16.0 on loss_psd_natural; its entropy bonus and
# uniform pull scale with it): each cell's logit of class c moves by
# 16 W_c / max(pi_c, 0.05), as the confusion reward's mirror step moves by
# its gains over a temperature. With the 1x step the rare classes rise
# (bicyclist's probability on its own pixels 0.8% -> 5.4% over the second
# half) slower than the poly schedule's falling rate allows. Measured
# (session 19, resumed from rss-image's 2k checkpoints): 52.85 / 50.39 /
# 52.62 val mIoU at 4k on seeds 0 / 1 / 2 (natural-16: 48.10 / 46.36 /
# 48.03), median 1.051x CE; sign 14.6 / 9.3 / 12.2, pedestrian 18.1 / 18.8 /
# 17.3, bicyclist 12.1 / 11.0 / 6.6 (half of CE's on seed 0 only;
# docs/method.md section 12). Larger steps overshoot (session 20: x32
# median 0.993x CE, x64 0.937x).
_base_ = './rss-image-natural-16_fast-scnn_1xb8-4k_camvid-176x240.py'
natural_loss = dict(_base_.natural_loss, loss_weight=16.0)
model = dict(decode_head=dict(loss=[_base_.psd_loss, natural_loss]))
