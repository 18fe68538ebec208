# Reward fine-tuning for mIoU at GPU scale in mixed precision:
# rss-finetune-miou-local_deeplabv3plus_r50-d8_4xb2-8k_cityscapes-512x1024.py
# with mmengine's AmpOptimWrapper (fp16 autocast; `tools/train.py --amp`
# gives the same). The network runs in float16; RSSHead's policy, the sampled
# maps' one-pixel gains and LocalExpectationLoss stay float32 (the policy
# takes logits.float(), and the closed-form gradient is cast once to the
# logits' dtype: docs/method.md, "Mixed precision"). Dynamic loss scale
# (mmengine's default), unlike the static 512 of mmseg's AMP configs: a
# converged model's gradients are small, and the scale grows until they sit
# well above float16's underflow, while one pixel's scaled logit gradient
# stays far inside float16's range (the normalized gain, a few hundred at
# most for a class fragment of a few pixels, over B x H x W = 2^20, times S).
#   bash tools/dist_train.sh configs/rss/finetune/rss-finetune-miou-local_deeplabv3plus_r50-d8_4xb2-amp-8k_cityscapes-512x1024.py 4
_base_ = './rss-finetune-miou-local_deeplabv3plus_r50-d8_4xb2-8k_cityscapes-512x1024.py'
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
