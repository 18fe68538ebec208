"""RSSHead with image-level rewards: PSR grids, scoring, bad rewards."""
import math

import pytest
import torch
from mmengine.logging import MessageHub
from mmseg.registry import MODELS

import rss_mmseg  # noqa: F401
from rss_mmseg.models.rewards.checks import RewardError
from tests.models.utils import make_data_samples

NUM_CLASSES = 4
FEATS = 8


def build_head(reward=None, loss=None, num_samples=4, scales=2, **kwargs):
    return MODELS.build(
        dict(
            type='RSSHead',
            head=dict(
                type='FCNHead',
                in_channels=FEATS,
                channels=8,
                num_convs=1,
                concat_input=False,
                in_index=0,
                num_classes=NUM_CLASSES),
            reward=reward or dict(type='ImageMIoUReward'),
            loss=loss or dict(type='PSDLoss'),
            num_samples=num_samples,
            scales=scales,
            **kwargs))


def batch(size=(16, 16), labels=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    feats = [torch.randn(2, FEATS, size[0] // 4, size[1] // 4,
                         generator=gen)]
    gt = torch.randint(0, NUM_CLASSES, (2, *size), generator=gen)
    samples = make_data_samples(gt)
    if not labels:
        for s in samples:
            del s.gt_sem_seg
    return feats, samples


class Recorder:
    """An image reward that remembers the action maps it scored."""
    level = 'image'
    value_range = (0.0, 1.0)

    def __init__(self):
        self.seen = []

    def __call__(self, actions, data_samples):
        self.seen.append(actions.clone())
        K, B = actions.shape[:2]
        score = (actions == 0).float().mean((2, 3))
        return score, torch.ones(B, dtype=torch.bool)


@MODELS.register_module(force=True)
class _RecordingReward(Recorder):
    pass


@MODELS.register_module(force=True)
class _HostileReward:
    """Returns something broken, chosen by ``mode``."""
    level = 'image'
    value_range = (0.0, 1.0)

    def __init__(self, mode):
        self.mode = mode

    def __call__(self, actions, data_samples):
        K, B = actions.shape[:2]
        rewards = torch.rand(K, B)
        valid = torch.ones(B, dtype=torch.bool)
        if self.mode == 'nan':
            rewards[0, 1] = math.nan
        elif self.mode == 'inf':
            rewards[1, 0] = math.inf
        elif self.mode == 'shape':
            rewards = rewards[:, :1]
        elif self.mode == 'dtype':
            rewards = (rewards > 0.5).long()
        elif self.mode == 'range':
            rewards = rewards + 1.5
        elif self.mode == 'raises':
            raise ConnectionError('rating service unreachable')
        elif self.mode == 'tuple':
            return rewards
        return rewards, valid

    def __repr__(self):
        return f'_HostileReward(mode={self.mode!r})'


def test_image_step_learns_from_the_grid_policy():
    head = build_head(num_samples=4, scales=2)
    feats, samples = batch()
    losses = head.loss(feats, samples, None)
    assert set(losses) >= {'loss_psd', 'reward', 'entropy', 'acc_sample'}
    assert 0.0 <= losses['reward'].item() <= 1.0
    assert losses['psr_cells'].item() == 4
    losses['loss_psd'].backward()
    grad = head.head.conv_seg.weight.grad
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize('scales,cells', [(2, (2, 2)), ((2, 4), (2, 4)),
                                          (None, (16, 16))])
def test_actions_are_constant_on_the_cells_of_the_grid(scales, cells):
    head = build_head(
        reward=dict(type='_RecordingReward'),
        loss=dict(type='PSRRewardLoss', baseline='group'),
        num_samples=3,
        scales=scales)
    feats, samples = batch()
    head.loss(feats, samples, None)
    actions = head.reward.seen[-1]
    assert actions.shape == (3, 2, 16, 16)
    rows, cols = cells
    blocks = actions.reshape(3, 2, rows, 16 // rows, cols, 16 // cols)
    # every pixel of a cell has the cell's action
    assert (blocks == blocks[:, :, :, :1, :, :1]).all()
    # and the cells are separate actions: near-uniform initial policies over
    # 4 classes give 6 grids of >= 4 cells whose cells differ somewhere
    corners = blocks[:, :, :, 0, :, 0]
    assert (corners != corners[:, :, :1, :1]).any()


def test_several_scales_per_step_average_their_losses():
    torch.manual_seed(0)
    head = build_head(
        reward=dict(type='_RecordingReward'), num_samples=2, scales=[2, 4])
    feats, samples = batch()
    losses = head.loss(feats, samples, None)
    seen = head.reward.seen
    assert len(seen) == 2  # one scoring per scale
    assert losses['psr_cells'].item() == 16  # the finest scale is logged
    assert torch.isfinite(losses['loss_psd'])


def test_several_scales_give_the_mean_of_the_single_scale_gradients():
    """One step on grids [2, 4] == the mean of a step on 2 and one on 4
    drawing the same samples (the same random stream, in the same order)."""
    head = build_head(
        reward=dict(type='_RecordingReward'),
        loss=dict(type='PSRRewardLoss', baseline='group'),
        num_samples=3,
        scales=[2, 4])
    head.head.dropout = None  # its random stream would shift the samples
    feats, samples = batch()
    weight = head.head.conv_seg.weight

    def grad_of_steps(scale_lists):
        torch.manual_seed(0)
        grads, values = [], []
        for scales in scale_lists:
            head.scales = scales
            loss = head.loss(feats, samples, None)['loss_psr']
            grads.append(torch.autograd.grad(loss, weight)[0])
            values.append(loss.detach())
        return sum(grads), sum(values)

    multi_grad, multi_value = grad_of_steps([[2, 4]])
    single_grad, single_value = grad_of_steps([2, 4])
    assert single_grad.abs().sum() > 0
    torch.testing.assert_close(multi_grad, single_grad / 2)
    torch.testing.assert_close(multi_value, single_value / 2)


def test_label_free_batch_trains_without_references():
    # 8 samples of 4 cells: two samples with equal rewards (and so no
    # gradient) for every image are as good as impossible; with 2 samples
    # that happened for 9 of 40 unseeded draws
    torch.manual_seed(0)
    head = build_head(reward=dict(type='_RecordingReward'), num_samples=8)
    feats, samples = batch(labels=False)
    losses = head.loss(feats, samples, None)
    assert 'acc_sample' not in losses and 'acc_seg' not in losses
    losses['loss_psd'].backward()
    assert head.head.conv_seg.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('mode,words', [
    ('nan', 'non-finite'),
    ('inf', 'non-finite'),
    ('shape', '(4, 2)'),
    ('dtype', 'floating dtype'),
    ('range', 'value_range'),
    ('raises', 'rating service unreachable'),
    ('tuple', 'must return (rewards, valid)'),
])
def test_hostile_reward_stops_with_its_name_and_the_iteration(mode, words):
    head = build_head(reward=dict(type='_HostileReward', mode=mode))
    feats, samples = batch()
    MessageHub.get_current_instance().update_info('iter', 6)
    with pytest.raises(RewardError) as info:
        head.loss(feats, samples, None)
    message = str(info.value)
    assert f"_HostileReward(mode='{mode}')" in message
    assert 'iteration 7' in message and words in message
    assert "on_bad_reward='skip'" in message


def test_hostile_pixel_reward_is_caught_too():
    head = MODELS.build(
        dict(
            type='RSSHead',
            head=dict(
                type='FCNHead',
                in_channels=FEATS,
                channels=8,
                num_convs=1,
                concat_input=False,
                num_classes=NUM_CLASSES),
            reward=dict(type='PixelMatchReward')))
    feats, samples = batch()
    head.reward.correct = math.nan  # a reward gone bad mid-run
    with pytest.raises(RewardError, match='non-finite'):
        head.loss(feats, samples, None)


def test_skipped_bad_reward_gives_no_gradient_and_is_counted():
    head = build_head(
        reward=dict(type='_HostileReward', mode='nan'), on_bad_reward='skip')
    feats, samples = batch()
    losses = head.loss(feats, samples, None)
    assert losses['bad_reward'].item() == 1.0
    assert torch.isfinite(losses['loss_psd'])
    losses['loss_psd'].backward()
    assert head.head.conv_seg.weight.grad.abs().sum() == 0
    assert head._bad_reward_batches == 1


def test_reward_that_needs_images_needs_the_rss_segmentor():
    head = build_head(
        reward=dict(
            type='CallableReward',
            fn='tests.models.test_rss_head_image.score_brightness'))
    feats, samples = batch()
    with pytest.raises(ValueError, match="model.type='RSSEncoderDecoder'"):
        head.loss(feats, samples, None)
    head.reward_inputs = torch.rand(2, 3, 16, 16)
    losses = head.loss(feats, samples, None)
    assert torch.isfinite(losses['loss_psd'])


def score_brightness(inputs, action_maps, data_samples):
    """A stand-in external scorer: reward class 1 where the image is bright."""
    bright = inputs.mean(1) > 0.5
    return ((action_maps == 1) == bright).float().mean((-2, -1))


@pytest.mark.parametrize('cfg,words', [
    (dict(loss=dict(type='PSDLoss'), num_samples=1), 'num_samples >= 2'),
    (dict(loss=dict(type='PixelRewardLoss')), 'pixel-level loss'),
    (dict(loss=dict(type='CrossEntropyLoss')), 'not an RSS loss'),
    (dict(local_block=0.5, num_samples=1,
          loss=dict(type='PSRRewardLoss', baseline='none')),
     'num_samples >= 2'),
    (dict(scales=[]), 'empty'),
    (dict(loss=dict(type='LocalExpectationLoss'),
          reward=dict(type='BoundaryFScoreReward', num_classes=NUM_CLASSES)),
     'cannot score one-cell variants.*PSDLoss'),
    (dict(loss=dict(type='LocalExpectationLoss'), local_block=0.5),
     'local_block'),
    (dict(scales='coarse'), 'PSR scale'),
])
def test_bad_image_level_configs_fail_at_build(cfg, words):
    with pytest.raises((ValueError, TypeError), match=words):
        build_head(**cfg)


def test_pixel_reward_with_scales_fails_at_build():
    with pytest.raises(ValueError, match='scales'):
        build_head(
            reward=dict(type='PixelMatchReward'),
            loss=dict(type='PixelRewardLoss'),
            scales=4)


def test_unknown_reward_type_fails_at_build():
    with pytest.raises(KeyError, match='NoSuchReward'):
        build_head(reward=dict(type='NoSuchReward'))


def test_grid_finer_than_the_logits_fails_with_the_sizes():
    head = build_head(scales=32)
    feats, samples = batch(size=(16, 16))
    with pytest.raises(ValueError, match=r'\(32, 32\).*\(16, 16\)'):
        head.loss(feats, samples, None)


def test_grid_rewards_skip_upsampling_but_equal_the_full_path():
    """Built-in rewards score PSR grids from per-cell counts: same rewards
    and same loss as scoring the upsampled maps, (K, B, H, W) never built."""
    from rss_mmseg.models.rewards import ImageMIoUReward

    class FullResolutionMIoU:  # the same reward without score_cells
        level, value_range = 'image', (0.0, 1.0)

        def __init__(self):
            self.inner = ImageMIoUReward()

        def __call__(self, actions, data_samples):
            return self.inner(actions, data_samples)

    feats, samples = batch()
    results = []
    for full in (False, True):
        torch.manual_seed(0)
        head = build_head(
            num_samples=6, scales=4,
            loss=dict(type='PSRRewardLoss', baseline='group'))
        if full:
            head.reward = FullResolutionMIoU()
        results.append(head.loss(feats, samples, None))
    cells, full = results
    for key in ('loss_psr', 'reward'):
        assert torch.allclose(cells[key], full[key]), key


@pytest.mark.parametrize('scales', [4, None, [2, 4]])
def test_local_expectation_trains_from_exact_variant_gains(scales):
    """The head hands LocalExpectationLoss the reward's one-cell gains of
    the very samples it drew, on every grid of the step."""
    feats, samples = batch()
    torch.manual_seed(0)
    head = build_head(num_samples=2, scales=scales,
                      loss=dict(type='LocalExpectationLoss'))
    calls = []
    forward = head.losses[0].forward

    def spy(policy, actions, rewards, valid, gains):
        calls.append((actions, rewards, gains))
        return forward(policy, actions, rewards, valid, gains=gains)

    head.losses[0].forward = spy
    losses = head.loss(feats, samples, None)
    assert len(calls) == (2 if isinstance(scales, list) else 1)
    for actions, rewards, gains in calls:
        expected = head.reward.score_cell_variants(actions, samples)
        assert torch.equal(rewards, expected[0])
        assert torch.equal(gains, expected[2])
    losses['loss_local'].backward()
    assert head.head.conv_seg.weight.grad.abs().sum() > 0


def test_active_losses_train_alone_as_if_the_others_were_not_there():
    """A head with PSDLoss and LocalExpectationLoss, restricted to one of
    them, gives the gradient of a head that has only that loss (the same
    samples drawn), and the other loss does not run: no one-cell variants
    are scored while only PSD is active."""
    feats, samples = batch()
    psd = dict(type='PSDLoss', uniform_weight=0.003)
    local = dict(type='LocalExpectationLoss', uniform_weight=0.003)
    torch.manual_seed(0)
    both = build_head(loss=[psd, local], num_samples=3, scales=4)
    state = both.state_dict()

    def grad(head, key):
        head.head.dropout = None  # its random stream would shift samples
        torch.manual_seed(1)
        losses = head.loss(feats, samples, None)
        return set(losses), torch.autograd.grad(
            losses[key], head.head.conv_seg.weight)[0]

    variant_calls = []
    score = both.reward.score_cell_variants
    both.reward.score_cell_variants = lambda *a, **k: (
        variant_calls.append(1), score(*a, **k))[1]
    for active, cfg, key in (('loss_psd', psd, 'loss_psd'),
                             ('loss_local', local, 'loss_local')):
        both.active_losses = [active]
        keys, got = grad(both, key)
        alone = build_head(loss=cfg, num_samples=3, scales=4)
        alone.load_state_dict(state)
        alone_keys, expected = grad(alone, key)
        assert keys == alone_keys and key in keys
        assert expected.abs().sum() > 0
        torch.testing.assert_close(got, expected)
        assert len(variant_calls) == (active == 'loss_local')
    both.active_losses = None  # both again, summed into 'loss'
    keys, _ = grad(both, 'loss_psd')
    assert {'loss_psd', 'loss_local'} <= keys


def test_active_losses_must_name_losses_of_the_head():
    head = build_head(loss=dict(type='PSDLoss'))
    with pytest.raises(ValueError, match=r"\['loss_psd'\].*loss_local"):
        head.active_losses = ['loss_local']
    with pytest.raises(ValueError, match='one or more'):
        head.active_losses = []
    assert head.active_losses is None
