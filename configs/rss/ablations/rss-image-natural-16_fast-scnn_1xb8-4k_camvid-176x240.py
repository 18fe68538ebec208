# rss-image (black-box reward) with natural-gradient PSD steps from the
# 16x16 grid on (PSDLoss(step='natural')): each cell's logit of class c
# moves by the class's importance-weighted pair credit W_c / max(pi_c, 0.05)
# instead of W_c, whose expectation is proportional to pi_c, so a class the
# policy gives 1% is no longer learned 1% as fast. The black-box counterpart
# of rss-image-exact-mirror-16's mirror steps. Measured (session 17,
# resumed from rss-image's 2k checkpoints): 48.10 / 46.36 / 48.03 val mIoU
# at 4k on seeds 0 / 1 / 2 (rss-image: 46.09 / 44.75 / 45.59), median
# 0.959x CE; bicyclist and sign still ~0 (docs/method.md section 12).
_base_ = '../rss-image_fast-scnn_1xb8-4k_camvid-176x240.py'
psd_loss = _base_.model.decode_head.loss
natural_loss = dict(
    psd_loss,
    step='natural',
    natural_floor=0.05,
    loss_name='loss_psd_natural')
model = dict(decode_head=dict(loss=[psd_loss, natural_loss]))
custom_hooks = [
    dict(
        hook,
        loss_names=[['loss_psd'], ['loss_psd'], ['loss_psd_natural'],
                    ['loss_psd_natural']])
    if hook['type'] == 'ProgressiveScaleHook' else hook
    for hook in _base_.custom_hooks
]
