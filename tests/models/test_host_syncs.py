"""No host-device sync per training step in rss_mmseg code.

On a GPU, reading a value on the host (``.item()``, ``bool(t)``, a boolean
mask, a ``bincount`` sized by its input, a blocking copy of host data)
stalls the host until the device has caught up. These tests count such
calls (:class:`~tests.models.sync_counter.SyncCounter`, on CPU tensors:
a counted call is a sync on a GPU) made from ``rss_mmseg`` code during
training steps, on the code paths an accelerator takes: the RSS head reads
its record of bad rewards once after the first step and then once every
``check_interval`` steps, and never otherwise.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import rss_mmseg  # noqa: F401
from rss_mmseg.engine.hooks import PolicyAnchorHook
from rss_mmseg.utils import counting
from rss_mmseg.models.rewards.checks import check_reward_output
from tests.models.sync_counter import SyncCounter
from tests.models.utils import make_data_samples

CONFIGS = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
    'configs', 'rss')
CHECK_SITE = 'rss_mmseg/models/rewards/checks.py'


@pytest.fixture
def accelerator_paths(monkeypatch):
    """Take the code paths of tensors on an accelerator, on CPU tensors.

    On CPU tensors the image rewards use shortcuts that read values on the
    host (free there: no device to wait for); on an accelerator they stay
    on the device. The counters must see the accelerator's path.
    """
    monkeypatch.setattr(counting, 'reads_are_free', lambda device: False)


def _train_batch(num_classes, size=64, batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(
            torch.randint(0, 256, (3, size, size), dtype=torch.uint8,
                          generator=gen))
        gt = torch.randint(0, num_classes, (1, size, size), generator=gen)
        gt[:, :4] = 255
        sample = SegDataSample(gt_sem_seg=PixelData(data=gt))
        sample.set_metainfo(
            dict(
                img_shape=(size, size),
                ori_shape=(size, size),
                pad_shape=(size, size)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def _count_steps(step, steps, set_iteration):
    """Run ``steps`` training steps; the sync report of each."""
    counts = []
    for i in range(steps):
        set_iteration(i)
        with SyncCounter() as counter:
            step(i)
        counts.append(dict(counter.sites))
    return counts


@pytest.mark.parametrize('config', [
    'rss-pixel_fast-scnn_1xb8-1k_synthetic-128x128.py',
    'rss-image_fast-scnn_1xb8-1k_synthetic-128x128.py',
    'rss-image_fast-scnn_1xb8-4k_camvid-176x240.py',
    'finetune/rss-finetune-miou-local-anchor_fast-scnn_1xb8-250_'
    'synthetic-128x128.py',
])
def test_train_steps_of_the_rss_recipes_sync_only_to_check(
        config, accelerator_paths, iteration):
    """``model.train_step`` (forward, RSS head, backward, optimizer) of the
    Fast-SCNN recipes: no sync from rss_mmseg code but the head's checks,
    one each, after step 1 and after every ``check_interval`` steps. The
    KL-anchored recipe runs its frozen reference on every batch too."""
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    cfg.model.data_preprocessor.size = (64, 64)
    cfg.model.decode_head.check_interval = 2
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    if any(h['type'] == 'PolicyAnchorHook' for h in cfg.custom_hooks):
        PolicyAnchorHook().attach(model)  # as before training
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    num_classes = cfg.model.decode_head.num_classes

    def step(i):
        model.train_step(_train_batch(num_classes, seed=i), optim_wrapper)

    counts = _count_steps(step, 4, iteration)
    assert [sum(c.values()) for c in counts] == [1, 0, 1, 0], counts
    for c in (counts[0], counts[2]):
        [site] = list(c)
        assert site.startswith(CHECK_SITE) and '(tolist)' in site, c


def _fcn(reward, loss, **kwargs):
    return MODELS.build(
        dict(
            type='RSSHead',
            head=dict(
                type='FCNHead',
                in_channels=8,
                channels=8,
                num_convs=1,
                concat_input=False,
                num_classes=4),
            reward=reward,
            loss=loss,
            **kwargs))


def device_scores(inputs, actions, data_samples):
    """A user scorer that returns a device tensor: (K, B) from (K, B, H, W).
    """
    return (actions == 0).float().mean((-2, -1))


class _TwoParts:
    """A reward made of others, checking each with check_reward_output."""
    level = 'image'
    value_range = (0.0, 2.0)

    def __init__(self):
        self.parts = [
            MODELS.build(dict(type='ImageMIoUReward')),
            MODELS.build(dict(type='ImageAccuracyReward', num_classes=4))
        ]

    def __call__(self, actions, data_samples):
        total, valid = 0.0, True
        for part in self.parts:
            rewards, part_valid = check_reward_output(
                part, part(actions, data_samples), actions, 'image')
            total, valid = total + rewards, part_valid & valid
        return total, valid


MODELS.register_module('_TwoPartsReward', module=_TwoParts, force=True)

HEADS = {
    'pixel, PixelRewardLoss mean':
    (dict(type='PixelMatchReward'),
     dict(type='PixelRewardLoss', baseline='mean'), {}),
    'pixel, PixelRewardLoss syncan, avg_non_ignore, K=2':
    (dict(type='PixelMatchReward', wrong=-1.0),
     dict(type='PixelRewardLoss', baseline='syncan',
          avg_non_ignore=True), dict(num_samples=2)),
    'image, mIoU on cells, PSD':
    (dict(type='ImageMIoUReward'), dict(type='PSDLoss'),
     dict(num_samples=4, scales=4)),
    'image, mIoU at full resolution, PSD':
    (dict(type='ImageMIoUReward'), dict(type='PSDLoss'),
     dict(num_samples=4, scales=None)),
    'image, mIoU(num_classes=4) full resolution, PSR':
    (dict(type='ImageMIoUReward', num_classes=4),
     dict(type='PSRRewardLoss'), dict(num_samples=4, scales=None)),
    'image, Dice on two scales, PSR group baseline':
    (dict(type='ImageDiceReward'),
     dict(type='PSRRewardLoss', baseline='group'),
     dict(num_samples=4, scales=[2, 4])),
    'image, local blocks, PSD syncan, entropy target':
    (dict(type='ImageMIoUReward', classes='reference'),
     dict(type='PSDLoss', normalize='syncan', entropy_target=0.5),
     dict(num_samples=4, scales=8, local_block=0.5)),
    'image, local expectation on cells, mIoU':
    (dict(type='ImageMIoUReward', classes='reference'),
     dict(type='LocalExpectationLoss', uniform_weight=0.01),
     dict(num_samples=2, scales=4)),
    'image, local expectation per pixel, Dice, pooled':
    (dict(type='ImageDiceReward'),
     dict(type='LocalExpectationLoss', pooled=True),
     dict(num_samples=1, scales=None)),
    'image, CallableReward returning a device tensor':
    (dict(type='CallableReward', fn=device_scores, batched=True,
          pass_inputs=False, value_range=(0, 1)), dict(type='PSDLoss'),
     dict(num_samples=3, scales=4)),
    'image, a reward checking its parts':
    (dict(type='_TwoPartsReward'), dict(type='PSDLoss'),
     dict(num_samples=3, scales=4)),
}


@pytest.mark.parametrize('name', list(HEADS))
def test_rss_head_steps_make_no_sync_between_checks(name, accelerator_paths,
                                                    iteration):
    """Loss forward and backward of heads on every reward and loss path."""
    reward, loss, kwargs = HEADS[name]
    torch.manual_seed(0)
    head = _fcn(reward, loss, check_interval=2, **kwargs)
    gen = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, 8, 4, 4, generator=gen)]
    gt = torch.randint(0, 4, (2, 16, 16), generator=gen)
    gt[:, 0] = 255
    samples = make_data_samples(gt)

    def step(i):
        losses = head.loss(feats, samples, None)
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        assert losses['bad_reward'] == 0

    counts = _count_steps(step, 4, iteration)
    assert [sum(c.values()) for c in counts] == [1, 0, 1, 0], counts


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason='needs CUDA (torch.cuda.set_sync_debug_mode sees the syncs '
    'themselves, inside torch ops too)')
@pytest.mark.parametrize('name', list(HEADS))
def test_cuda_steps_between_checks_do_not_sync(name, iteration):
    """The ground truth on a GPU: CUDA raises on any synchronizing call
    (device-to-host reads, blocking copies, data-sized outputs) made
    during the steps between the head's checks."""
    reward, loss, kwargs = HEADS[name]
    torch.manual_seed(0)
    head = _fcn(reward, loss, check_interval=3, **kwargs).cuda()
    gen = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, 8, 4, 4, generator=gen).cuda()]
    gt = torch.randint(0, 4, (2, 16, 16), generator=gen)
    gt[:, 0] = 255
    samples = make_data_samples(gt.cuda())
    for i in range(3):  # step 1 is checked, steps 2 and 3 are not
        iteration(i)
        if i:
            torch.cuda.set_sync_debug_mode('error')
        try:
            losses = head.loss(feats, samples, None)
            sum(v for k, v in losses.items() if 'loss' in k).backward()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    assert losses['bad_reward'].item() == 0
