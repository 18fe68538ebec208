"""The KL anchor of reward fine-tuning: RSSHead(anchor_weight) and the
frozen starting model RSSEncoderDecoder runs."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import build_optim_wrapper
from mmseg.registry import MODELS

import rss_mmseg  # noqa: F401
from rss_mmseg.engine.hooks.policy_anchor_hook import frozen_reference
from tests.models.test_rss_head_outputs import POINT_HEAD
from tests.models.utils import make_data_samples, random_labels

C = 4
FCN = dict(
    type='FCNHead',
    in_channels=8,
    channels=8,
    num_convs=1,
    concat_input=False,
    num_classes=C,
    norm_cfg=dict(type='BN', requires_grad=True))  # dropout 0.1 (default)
IMAGE = dict(
    reward=dict(type='ImageMIoUReward', classes='reference'),
    loss=dict(type='LocalExpectationLoss', normalize='cells'),
    num_samples=2)


def make_head(anchor_weight=0.5, **kwargs):
    cfg = dict(type='RSSHead', head=FCN, anchor_weight=anchor_weight)
    cfg.update(IMAGE)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def make_segmentor(anchor_weight=0.5, type='RSSEncoderDecoder'):
    """A small RSSEncoderDecoder with BatchNorm and dropout."""
    torch.manual_seed(0)
    head = dict(type='RSSHead', head=FCN, anchor_weight=anchor_weight)
    head.update(IMAGE)
    return MODELS.build(
        dict(
            type=type,
            data_preprocessor=dict(type='SegDataPreProcessor'),
            backbone=dict(
                type='ResNetV1c',
                depth=18,
                num_stages=1,
                out_indices=(0, ),
                strides=(1, ),
                dilations=(1, ),
                stem_channels=8,
                base_channels=8,
                norm_cfg=dict(type='BN', requires_grad=True)),
            decode_head=head,
            train_cfg=dict(),
            test_cfg=dict(mode='whole')))


def batch(seed=0, size=32, n=2):
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 3, size, size, generator=gen)
    labels = random_labels(n, C, (size, size), seed=seed)
    return inputs, make_data_samples(labels)


def loss_keys(losses):
    return [k for k in losses if 'loss' in k]


# ------------------------------------------------------------------ head
@pytest.mark.parametrize('weight', [-0.1, math.nan, math.inf, True, '1'])
def test_anchor_weight_is_checked(weight):
    with pytest.raises(ValueError, match='anchor_weight must be'):
        make_head(anchor_weight=weight)


def test_point_head_is_not_anchored():
    with pytest.raises(ValueError, match='first stage'):
        MODELS.build(
            dict(
                type='RSSHead',
                head=POINT_HEAD,
                reward=dict(type='PixelMatchReward'),
                anchor_weight=1.0))


def test_kl_and_its_gradient_are_zero_at_the_reference():
    head = make_head(anchor_weight=2.0)
    torch.manual_seed(0)
    logits = torch.randn(2, C, 6, 6, requires_grad=True)
    samples = make_data_samples(random_labels(2, C, (24, 24)))
    head.anchor_logits = logits.detach().clone()
    losses = head.loss_by_feat(logits, samples)
    assert losses['anchor_kl'].abs() < 1e-7
    grad, = torch.autograd.grad(losses['loss_anchor'], logits)
    assert grad.abs().max() < 1e-8  # float rounding
    # and not elsewhere
    head.anchor_logits = logits.detach() + torch.randn(2, C, 6, 6)
    losses = head.loss_by_feat(logits, samples)
    assert losses['anchor_kl'] > 1e-3
    grad, = torch.autograd.grad(losses['loss_anchor'], logits)
    assert grad.abs().max() > 1e-4


def test_gradient_is_that_of_the_kl():
    """loss_anchor = w * mean over batch and pixels of KL(p || q): its
    gradient w.r.t. the logits, against F.kl_div's autograd and the closed
    form p (log p - log q - KL) / pixels; a coarser reference is resized
    to the logits' size first."""
    w = 0.3
    head = make_head(anchor_weight=w)
    gen = torch.Generator().manual_seed(1)
    logits = (2 * torch.randn(2, C, 6, 8, generator=gen)).requires_grad_()
    ref = 2 * torch.randn(2, C, 3, 4, generator=gen)
    head.anchor_logits = ref
    samples = make_data_samples(random_labels(2, C, (24, 32)))
    losses = head.loss_by_feat(logits, samples)
    grad, = torch.autograd.grad(losses['loss_anchor'], logits)

    ref_up = F.interpolate(ref, size=(6, 8), mode='bilinear',
                           align_corners=False)
    z = logits.detach().double().requires_grad_()
    log_p = F.log_softmax(z, 1)
    log_q = F.log_softmax(ref_up.double(), 1)
    kl = F.kl_div(log_q, log_p, log_target=True, reduction='none').sum(1)
    expected, = torch.autograd.grad(w * kl.mean(), z)
    torch.testing.assert_close(grad.double(), expected, rtol=1e-5,
                               atol=1e-9)
    p = log_p.exp().detach()
    closed = w * p * (log_p - log_q - kl[:, None]).detach() / kl.numel()
    torch.testing.assert_close(grad.double(), closed, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(losses['anchor_kl'].double(),
                               kl.mean().detach(), rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(losses['loss_anchor'],
                               w * losses['anchor_kl'])


def test_without_anchor_logits_the_head_names_the_hook():
    head = make_head(anchor_weight=1.0)
    logits = torch.randn(2, C, 6, 6, requires_grad=True)
    samples = make_data_samples(random_labels(2, C, (24, 24)))
    with pytest.raises(RuntimeError, match="type='PolicyAnchorHook'"):
        head.loss_by_feat(logits, samples)
    head.anchor_logits = torch.randn(2, C + 1, 6, 6)
    with pytest.raises(ValueError, match='anchor_logits must be'):
        head.loss_by_feat(logits, samples)


def test_weight_zero_adds_nothing():
    head = make_head(anchor_weight=0.0)
    losses = head.loss_by_feat(
        torch.randn(2, C, 6, 6, requires_grad=True),
        make_data_samples(random_labels(2, C, (24, 24))))
    assert 'loss_anchor' not in losses and 'anchor_kl' not in losses


# ------------------------------------------------------------- segmentor
def test_segmentor_without_reference_names_the_hook():
    model = make_segmentor()
    model.train()
    with pytest.raises(RuntimeError, match='PolicyAnchorHook'):
        model.loss(*batch())
    assert model.decode_head.anchor_logits is None


def test_reference_in_train_mode_replays_the_policy_forward():
    """With the starting weights the KL is exactly zero, and so is its
    gradient, although the model has BatchNorm (batch statistics) and
    dropout (random masks): the reference runs the same training forward
    with the same masks. A reference in eval mode differs (it is not
    zero), and neither changes the policy's random stream."""
    model = make_segmentor(anchor_weight=1.0)
    model.train()
    inputs, samples = batch()

    def run(reference):
        model.set_anchor(reference)
        torch.manual_seed(3)
        model.zero_grad()
        losses = model.loss(inputs, samples)
        losses['decode.loss_anchor'].backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        return losses, grads, torch.rand(())

    ref = frozen_reference(model, 'train')
    running = [b.clone() for b in ref.buffers() if b.is_floating_point()]
    losses, grads, after = run(ref)
    assert losses['decode.anchor_kl'] == 0
    largest = max(g.abs().max() for g in grads)
    assert largest < 1e-6  # float rounding
    # the reference's BatchNorm statistics never change
    assert running and all(
        torch.equal(a, b) for a, b in zip(
            running, [b for b in ref.buffers() if b.is_floating_point()]))

    eval_losses, eval_grads, eval_after = run(
        frozen_reference(model, 'eval'))
    assert eval_losses['decode.anchor_kl'] > 1e-4
    assert max(g.abs().max() for g in eval_grads) > 1e4 * largest
    # same random stream: same reward for the same sampled actions
    assert torch.equal(after, eval_after)
    assert losses['decode.reward'] == eval_losses['decode.reward']


def test_anchor_kl_is_logged_not_summed():
    model = make_segmentor(anchor_weight=0.5)
    model.set_anchor(frozen_reference(model))
    model.train()
    with torch.no_grad():
        for p in model.decode_head.parameters():
            p.add_(0.1 * torch.randn_like(p))
    losses = model.loss(*batch())
    assert losses['decode.anchor_kl'] > 0
    torch.testing.assert_close(losses['decode.loss_anchor'],
                               0.5 * losses['decode.anchor_kl'])
    total, log_vars = model.parse_losses(losses)
    assert 'decode.anchor_kl' in log_vars
    torch.testing.assert_close(
        total, sum(losses[k] for k in loss_keys(losses)))
    assert model.decode_head.anchor_logits is None  # cleared after the step


def test_reference_is_outside_the_module_tree():
    model = make_segmentor()
    keys = list(model.state_dict())
    params = list(model.parameters())
    ref = frozen_reference(model)
    model.set_anchor(ref)
    assert model.anchor is ref
    assert list(model.state_dict()) == keys
    assert list(model.parameters()) == params
    ref_params = {id(p) for p in ref.parameters()}
    assert not ref_params & {id(p) for p in model.parameters()}
    assert not any(m is ref for m in model.modules())
    wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='SGD', lr=0.1)))
    in_optimizer = {
        id(p)
        for group in wrapper.optimizer.param_groups for p in group['params']
    }
    assert not ref_params & in_optimizer
    assert all(not p.requires_grad for p in ref.parameters())
    # a copy of the model (EMA, the next reference) shares, not copies, it
    assert copy.deepcopy(model).anchor is ref
    # the next reference does not hold the previous one
    assert frozen_reference(model).anchor is None
    assert model.anchor is ref


def test_the_anchor_never_reads_labels():
    """With the rewards held fixed, the gradient of the anchored step is the
    same whatever the labels: they reach it only through the reward."""
    model = make_segmentor(anchor_weight=1.0)
    model.train()
    with torch.no_grad():  # a reference that differs from the policy
        ref = frozen_reference(model)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.set_anchor(ref)
    head = model.decode_head
    inputs, samples = batch(seed=0)
    labels = random_labels(2, C, (32, 32), seed=1)
    labels[:, :, :5] = 255  # other labels, other ignored pixels
    other = make_data_samples(labels)
    score, recorded = head._score, []

    def record(*args, **kwargs):
        recorded.append(score(*args, **kwargs))
        return recorded[-1]

    def replay(*args, **kwargs):
        return recorded.pop(0)

    def grads(data_samples, scorer):
        head._score = scorer
        torch.manual_seed(0)
        model.zero_grad()
        losses = model.loss(inputs, data_samples)
        sum(losses[k] for k in loss_keys(losses)).backward()
        return losses, [p.grad.clone() for p in model.parameters()
                        if p.grad is not None]

    losses, expected = grads(samples, record)
    assert losses['decode.anchor_kl'] > 0
    _, got = grads(other, replay)
    assert all(torch.equal(a, b) for a, b in zip(expected, got))


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason='needs CUDA (torch.cuda.set_sync_debug_mode sees the syncs '
    'themselves: the reference forward, the RNG fork, the KL)')
def test_cuda_anchored_steps_between_checks_do_not_sync(iteration):
    model = make_segmentor(anchor_weight=1.0).cuda()
    model.decode_head.check_interval = 3
    model.set_anchor(frozen_reference(model))
    model.train()
    inputs = batch()[0].cuda()
    samples = make_data_samples(random_labels(2, C, (32, 32)).cuda())
    for i in range(3):  # step 1 is checked, steps 2 and 3 are not
        iteration(i)
        if i:
            torch.cuda.set_sync_debug_mode('error')
        try:
            losses = model.loss(inputs, samples)
            sum(losses[k] for k in loss_keys(losses)).backward()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    assert losses['decode.anchor_kl'].item() >= 0
