"""RSSHead wraps any decode head: trains from rewards, predicts as the head."""
import pytest
import torch
from mmengine.config import ConfigDict
from mmseg.registry import MODELS

import rss_mmseg  # noqa: F401
from rss_mmseg.models import RSSHead
from tests.models.utils import make_data_samples

NUM_CLASSES = 5
NORM = dict(type='BN', requires_grad=True)

RESNET = dict(
    type='ResNetV1c',
    depth=18,
    stem_channels=16,
    base_channels=8,
    out_indices=(0, 1, 2, 3),
    dilations=(1, 1, 2, 4),
    strides=(1, 2, 1, 1),
    norm_cfg=NORM,
    contract_dilation=True)  # channels 8, 16, 32, 64
MOBILENET = dict(
    type='MobileNetV2',
    widen_factor=0.25,
    strides=(1, 2, 2, 1, 1, 1, 1),
    dilations=(1, 1, 1, 2, 2, 4, 4),
    out_indices=(1, 2, 4, 6),
    norm_cfg=NORM)  # channels 8, 8, 24, 80
MIT = dict(
    type='MixVisionTransformer',
    embed_dims=8,
    num_layers=[1, 1, 1, 1],
    num_heads=[1, 1, 2, 2],
    sr_ratios=[8, 4, 2, 1],
    mlp_ratio=2)  # channels 8, 8, 16, 16
FAST_SCNN = dict(
    type='FastSCNN',
    downsample_dw_channels=(8, 12),
    global_in_channels=16,
    global_block_channels=(16, 24, 32),
    global_out_channels=32,
    higher_in_channels=16,
    lower_in_channels=32,
    fusion_out_channels=32,
    norm_cfg=NORM)

HEADS = {
    'resnet-fcn': (RESNET,
                   dict(
                       type='FCNHead',
                       in_channels=64,
                       in_index=3,
                       channels=16,
                       num_convs=1,
                       concat_input=False,
                       norm_cfg=NORM)),
    'resnet-deeplabv3plus': (RESNET,
                             dict(
                                 type='DepthwiseSeparableASPPHead',
                                 in_channels=64,
                                 in_index=3,
                                 channels=16,
                                 dilations=(1, 2, 3, 4),
                                 c1_in_channels=8,
                                 c1_channels=8,
                                 norm_cfg=NORM)),
    'resnet-upernet': (RESNET,
                       dict(
                           type='UPerHead',
                           in_channels=[8, 16, 32, 64],
                           in_index=[0, 1, 2, 3],
                           pool_scales=(1, 2, 3, 6),
                           channels=16,
                           norm_cfg=NORM)),
    'mobilenetv2-deeplabv3plus': (MOBILENET,
                                  dict(
                                      type='DepthwiseSeparableASPPHead',
                                      in_channels=80,
                                      in_index=3,
                                      channels=16,
                                      dilations=(1, 2, 3, 4),
                                      c1_in_channels=8,
                                      c1_channels=8,
                                      norm_cfg=NORM)),
    'mit-segformer': (MIT,
                      dict(
                          type='SegformerHead',
                          in_channels=[8, 8, 16, 16],
                          in_index=[0, 1, 2, 3],
                          channels=16,
                          norm_cfg=NORM)),
    'fastscnn-dwsfcn': (FAST_SCNN,
                        dict(
                            type='DepthwiseSeparableFCNHead',
                            in_channels=32,
                            channels=32,
                            concat_input=False,
                            in_index=-1,
                            norm_cfg=NORM)),
}


def _rss_head_cfg(head, **kwargs):
    head = dict(head, num_classes=NUM_CLASSES)
    return dict(
        type='RSSHead',
        head=head,
        reward=dict(type='PixelMatchReward'),
        loss=dict(type='PixelRewardLoss'),
        **kwargs)


def _segmentor(backbone, decode_head):
    return MODELS.build(
        ConfigDict(
            type='EncoderDecoder',
            backbone=backbone,
            decode_head=decode_head,
            train_cfg=dict(),
            test_cfg=dict(mode='whole')))


def _batch(size=(64, 64), batch=2):
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, 3, *size, generator=gen)
    labels = torch.randint(0, NUM_CLASSES, (batch, *size), generator=gen)
    labels[:, :4] = 255
    return inputs, make_data_samples(labels)


@pytest.mark.parametrize('name', list(HEADS))
def test_wraps_head(name):
    torch.manual_seed(0)
    backbone, head = HEADS[name]
    model = _segmentor(backbone, _rss_head_cfg(head))
    assert isinstance(model.decode_head, RSSHead)
    assert model.num_classes == model.out_channels == NUM_CLASSES
    inputs, samples = _batch()

    model.train()
    losses = model.loss(inputs, samples)
    loss_keys = [k for k in losses if 'loss' in k]
    assert loss_keys == ['decode.loss_pixel_reward']
    for stat in ('reward', 'adv_std', 'entropy', 'acc_sample', 'acc_seg'):
        assert f'decode.{stat}' in losses
    assert all(torch.isfinite(v).all() for v in losses.values())
    total, log_vars = model.parse_losses(losses)
    torch.testing.assert_close(total, losses['decode.loss_pixel_reward'])
    assert 'decode.entropy' in log_vars
    total.backward()
    for part in (model.backbone, model.decode_head):
        grads = [p.grad for p in part.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads)

    model.eval()
    metas = [s.metainfo for s in samples]
    with torch.no_grad():
        feats = model.extract_feat(inputs)
        ours = model.decode_head.predict(feats, metas, model.test_cfg)
        theirs = model.decode_head.head.predict(feats, metas, model.test_cfg)
        assert torch.equal(ours, theirs)
        out = model.predict(inputs, samples)
    assert out[0].pred_sem_seg.data.shape == (1, 64, 64)


def test_head_interface_and_no_label_loss():
    head = RSSHead(**{
        k: v
        for k, v in _rss_head_cfg(HEADS['resnet-fcn'][1],
                                  num_classes=3).items() if k != 'type'
    })
    assert head.num_classes == head.head.num_classes == 3
    assert head.out_channels == 3
    assert head.align_corners is False and head.ignore_index == 255
    assert 'loss_decode' not in dict(head.head.named_children())
    feats = [torch.randn(2, 64, 8, 8)] * 4
    _, samples = _batch(size=(32, 32))
    with pytest.raises(AttributeError):
        head.head.loss(feats, samples, dict())  # labels never reach it
    head.eval()  # no dropout
    torch.testing.assert_close(head.forward(feats), head.head.forward(feats))


def test_binary_sigmoid_head_is_refused():
    cfg = _rss_head_cfg(HEADS['resnet-fcn'][1])
    cfg['head'].update(num_classes=2, out_channels=1)
    with pytest.raises(ValueError, match='out_channels'):
        MODELS.build(cfg)


def test_several_losses_are_summed_by_name():
    cfg = _rss_head_cfg(HEADS['resnet-fcn'][1], num_samples=2)
    cfg['loss'] = [
        dict(type='PixelRewardLoss', loss_weight=0.5),
        dict(type='PixelRewardLoss', loss_weight=0.5),
        dict(type='PixelRewardLoss', loss_name='loss_other')
    ]
    torch.manual_seed(0)
    head = MODELS.build(cfg)
    _, samples = _batch(size=(16, 16))
    losses = head.loss([torch.randn(2, 64, 8, 8)] * 4, samples, dict())
    assert sorted(k for k in losses if 'loss' in k) == [
        'loss_other', 'loss_pixel_reward'
    ]
    torch.testing.assert_close(losses['loss_pixel_reward'],
                               losses['loss_other'])


def test_plain_head_checkpoint_loads_into_rss_head():
    backbone, head = HEADS['resnet-fcn']
    torch.manual_seed(0)
    plain = _segmentor(backbone, dict(head, num_classes=NUM_CLASSES))
    rss = _segmentor(backbone, _rss_head_cfg(head))
    rss.load_state_dict(plain.state_dict())  # strict
    for key, value in plain.decode_head.state_dict().items():
        torch.testing.assert_close(rss.decode_head.head.state_dict()[key],
                                   value)
    rss.load_state_dict(rss.state_dict())  # its own keys still load
    inputs, samples = _batch()
    plain.eval()
    rss.eval()
    with torch.no_grad():
        assert torch.equal(
            plain.predict(inputs, samples)[0].seg_logits.data,
            rss.predict(inputs, samples)[0].seg_logits.data)
