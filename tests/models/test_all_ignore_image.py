"""An image whose labels are all ignore trains to a zero, finite loss."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmseg.registry import DATASETS, MODELS

from tests.conftest import REPO_ROOT

CONFIG = osp.join(REPO_ROOT, 'configs/rss',
                  'rss-pixel_fast-scnn_1xb8-1k_synthetic-128x128.py')


@pytest.fixture(scope='module')
def model_and_batch(synthetic_root):
    """The pixel-RSS segmentor and a real 2-image batch from the pipeline."""
    cfg = Config.fromfile(CONFIG)
    cfg.model.data_preprocessor.size = (64, 64)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    cfg.train_dataloader.dataset.data_root = synthetic_root
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    return model, [dataset[0], dataset[1]]


def _loss(model, samples, ignored):
    """Losses of ``model.loss`` with the labels of images ``ignored`` set
    to 255, and the total's gradient."""
    batch = pseudo_collate(copy.deepcopy(samples))
    for i in ignored:
        batch['data_samples'][i].gt_sem_seg.data.fill_(255)
    data = model.data_preprocessor(batch, training=True)
    model.zero_grad()
    losses = model.loss(data['inputs'], data['data_samples'])
    total, log_vars = model.parse_losses(losses)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return losses, log_vars, total, grads


def test_all_ignored_batch_gives_zero_finite_loss(model_and_batch):
    model, samples = model_and_batch
    model.train()
    losses, log_vars, total, grads = _loss(model, samples, ignored=[0, 1])
    assert any(key.startswith('decode.loss_') for key in losses)
    assert torch.isfinite(total) and total.item() == 0.0
    for key, value in log_vars.items():
        assert torch.isfinite(torch.as_tensor(value)), key
    assert all(torch.isfinite(g).all() and (g == 0).all() for g in grads)


def test_one_ignored_image_leaves_the_other_training(model_and_batch):
    model, samples = model_and_batch
    model.train()
    _, log_vars, total, grads = _loss(model, samples, ignored=[1])
    assert torch.isfinite(total)
    for key, value in log_vars.items():
        assert torch.isfinite(torch.as_tensor(value)), key
    assert all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
