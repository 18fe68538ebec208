"""RSSHead around heads with several outputs, point heads, refused heads."""
import math

import pytest
import torch
from mmengine.config import ConfigDict
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import nn

import rss_mmseg  # noqa: F401
from rss_mmseg.models import RSSHead
from rss_mmseg.models.rewards import PixelMatchReward
from tests.models.utils import make_data_samples, random_labels

C = 5
NORM = dict(type='BN', requires_grad=True)
PIXEL = dict(
    reward=dict(type='PixelMatchReward'),
    loss=dict(type='PixelRewardLoss', baseline='mean'))
IMAGE = dict(
    reward=dict(type='ImageMIoUReward'),
    loss=dict(type='PSRRewardLoss'),
    num_samples=4,
    scales=4)
DA_HEAD = dict(
    type='DAHead',
    in_channels=16,
    in_index=0,
    channels=8,
    pam_channels=4,
    num_classes=C,
    norm_cfg=NORM)
ENC_HEAD = dict(
    type='EncHead',
    in_channels=[8, 16],
    in_index=[0, 1],
    channels=8,
    num_codes=4,
    use_se_loss=True,
    add_lateral=False,
    num_classes=C,
    norm_cfg=NORM,
    loss_se_decode=dict(
        type='CrossEntropyLoss', use_sigmoid=True, loss_weight=0.2))
POINT_HEAD = dict(
    type='PointHead',
    in_channels=[8],
    in_index=[0],
    channels=8,
    num_fcs=1,
    coarse_pred_each_layer=True,
    num_classes=C)


@MODELS.register_module()
class TwoMapTestHead(BaseDecodeHead):
    """Returns (learned logits, all-zero logits): which one RSSHead uses as
    the policy shows in the logged entropy (log C for the zero map)."""

    def forward(self, inputs):
        logits = self.cls_seg(self._transform_inputs(inputs))
        return logits, logits * 0


def features(channels=(16, ), size=8, batch=2):
    torch.manual_seed(0)
    return tuple(torch.randn(batch, c, size, size) for c in channels)


def batch(size=16, batch=2):
    return make_data_samples(random_labels(batch, C, (size, size)))


def build(head, level=PIXEL, **kwargs):
    torch.manual_seed(0)
    return RSSHead(head=head, **level, **kwargs)


def loss_of(head, feats, samples, seed=1):
    torch.manual_seed(seed)
    return head.loss(feats, samples, ConfigDict())


def test_known_multi_output_heads_use_the_predicted_output():
    assert build(DA_HEAD).output_index == 0
    assert build(ENC_HEAD).output_index == 0


@pytest.mark.parametrize('index, zero_map', [(0, False), (1, True)])
def test_output_index_picks_the_policy(index, zero_map):
    head = build(
        dict(type='TwoMapTestHead', in_channels=16, channels=16,
             num_classes=C), output_index=index, extra_outputs='drop')
    entropy = float(loss_of(head, features(), batch())['entropy'])
    assert math.isclose(entropy, math.log(C), rel_tol=1e-5) is zero_map


def test_unknown_multi_output_head_is_refused_with_the_fix():
    head = build(
        dict(type='TwoMapTestHead', in_channels=16, channels=16,
             num_classes=C))
    with pytest.raises(TypeError, match='TwoMapTestHead.forward returned 2 '
                       'outputs.*Fix: set model.decode_head.output_index'):
        loss_of(head, features(), batch())


def test_output_index_must_point_at_a_segmentation():
    head = build(ENC_HEAD, output_index=1)  # the SE vector (B, C)
    with pytest.raises(TypeError, match='output 1 of EncHead.forward is not'):
        loss_of(head, features((8, 16)), batch())


@pytest.mark.parametrize('level', [PIXEL, IMAGE], ids=['pixel', 'image'])
def test_extra_maps_are_trained_by_the_reward(level):
    head = build(DA_HEAD, level)
    losses = loss_of(head, features(), batch())
    name = head.losses[0].loss_name
    assert {f'extra1.{name}', f'extra2.{name}'} <= set(losses)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    for branch in (head.head.pam_conv_seg, head.head.cam_conv_seg):
        assert branch.weight.grad is not None
        assert branch.weight.grad.abs().sum() > 0


def test_dropped_extra_outputs_get_no_gradient():
    head = build(DA_HEAD, extra_outputs='drop')
    losses = loss_of(head, features(), batch())
    assert not [k for k in losses if k.startswith('extra')]
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert head.head.pam_conv_seg.weight.grad is None
    assert head.head.conv_seg.weight.grad.abs().sum() > 0


def test_extra_weight_scales_the_extra_losses():
    feats, samples = features(), batch()
    one = loss_of(build(DA_HEAD), feats, samples)
    two = loss_of(build(DA_HEAD, extra_weight=2.0), feats, samples)
    name = 'extra1.loss_pixel_reward'
    assert one[name] != 0
    torch.testing.assert_close(two[name], 2 * one[name])
    torch.testing.assert_close(two['loss_pixel_reward'],
                               one['loss_pixel_reward'])


def test_se_vector_is_dropped_and_label_losses_are_deleted():
    head = build(ENC_HEAD)
    assert not [m for m in head.head.modules() if hasattr(m, 'loss_name')]
    losses = loss_of(head, features((8, 16)), batch())
    assert not [k for k in losses if k.startswith('extra')]
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert head.head.se_layer.weight.grad is None


class RecordingReward(PixelMatchReward):
    calls = []

    def __call__(self, actions, data_samples):
        self.calls.append((actions, data_samples))
        return super().__call__(actions, data_samples)


def test_point_head_is_rewarded_at_its_sampled_points():
    head = build(POINT_HEAD)
    head.reward = RecordingReward()
    labels = torch.full((2, 16, 16), 3)
    labels[1] = 1
    prev_output = torch.randn(2, C, 8, 8)
    train_cfg = ConfigDict(
        num_points=12, oversample_ratio=3, importance_sample_ratio=0.75)
    torch.manual_seed(1)
    losses = head.loss(
        features((8, )), prev_output, make_data_samples(labels), train_cfg)
    actions, samples = RecordingReward.calls[-1]
    assert actions.shape == (1, 2, 1, 12)
    assert samples[0].gt_sem_seg.data.shape == (1, 1, 12)
    assert (samples[0].gt_sem_seg.data == 3).all()
    assert (samples[1].gt_sem_seg.data == 1).all()
    losses['loss_pixel_reward'].backward()
    assert head.head.fc_seg.weight.grad.abs().sum() > 0


def test_point_head_is_refused_at_image_level():
    with pytest.raises(ValueError, match='cannot train PointHead from an '
                       'image-level reward.*Fix: train the point head at '
                       'pixel level'):
        build(POINT_HEAD, IMAGE)


@pytest.mark.parametrize('name', ['MaskFormerHead', 'Mask2FormerHead'])
def test_mask_classification_heads_are_refused_by_name(name):
    with pytest.raises(ValueError, match=f'RSSHead cannot wrap {name}: it '
                       'classifies masks.*Fix:'):
        build(dict(type=name, num_classes=C))


def test_bad_extra_outputs_value_is_refused():
    with pytest.raises(ValueError, match="extra_outputs must be 'reward' or "
                       "'drop'"):
        build(DA_HEAD, extra_outputs='keep')


def test_wrapped_head_has_no_loss_modules_left():
    head = build(DA_HEAD)
    assert not isinstance(getattr(head.head, 'loss_decode', None), nn.Module)
