"""The mmseg model-zoo checkpoints that the GPU-scale fine-tuning configs
start from (``load_from`` URLs in configs/rss/finetune) fill every
parameter of the model they fine-tune.

Offline, each URL is served by a stand-in with the zoo file's key layout
(``tests/gpu_dry_run.py``'s ``model_zoo_checkpoint``: ``{'meta', 'state_dict'}``
of the stock mmseg model of the config's ``mmseg::`` base, plain decode head
and auxiliary head) put where ``torch.hub`` caches the URL, and the model is
loaded as the runner loads ``load_from``: ``mmengine.runner.load_checkpoint``
on the URL, through mmengine's http loader. Every tensor of the stand-in is
filled with values of its own, so a parameter that kept its initialization
is found. Checked: no key of the model is missing from the checkpoint or of
another shape, the only unused checkpoint keys are the auxiliary head's
(the configs drop it), and every backbone and decode-head tensor equals the
checkpoint's (``decode_head.X`` in the zoo file is ``decode_head.head.X``
under ``RSSHead``, which maps it when loading). A config whose model
differs from one already checked only in its losses (``lovasz-finetune``
from ``ce-continued``) or not at all (the ``-amp-`` one) passes without a
second build.

The checks are shown to fail on a checkpoint without the decode head and on
one of another class count, both loaded from a local file (``torch.load``
with ``weights_only=True`` under torch >= 2.6, what a downloaded zoo file
given as ``load_from=PATH`` goes through; rss_mmseg.compat.checkpoint
allow-lists what mmengine's own checkpoints add).
"""
import logging
import os
import os.path as osp
import re
from typing import Dict, List

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint

import rss_mmseg  # noqa: F401
from tests.conftest import REPO_ROOT
from tests.gpu_dry_run import (cache_as_download, gpu_scale_configs, is_url,
                               model_zoo_checkpoint)
from tests.test_configs import build_untrained

FINETUNE = osp.join(REPO_ROOT, 'configs', 'rss', 'finetune')
CONFIGS = [p for p in gpu_scale_configs() if osp.dirname(p) == FINETUNE]
CITYSCAPES = 'deeplabv3plus_r50-d8_4xb2-8k_cityscapes-512x1024.py'
VOC12AUG = 'deeplabv3plus_r50-d8_4xb4-4k_voc12aug-512x512.py'
# the configs this file was written for; any other one is checked too
EXPECTED = {
    f'{method}_{name}'
    for method in ('ce-continued', 'lovasz-finetune', 'rss-finetune-miou-local')
    for name in (CITYSCAPES, VOC12AUG)
} | {'rss-finetune-miou-local_deeplabv3plus_r50-d8_4xb2-amp-8k_'
     'cityscapes-512x1024.py'}
RSS_CITYSCAPES = osp.join(FINETUNE, f'rss-finetune-miou-local_{CITYSCAPES}')
UNUSED_PREFIX = 'auxiliary_head.'


class _Messages(logging.Handler):

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def load_report(model: torch.nn.Module, filename: str) -> Dict[str, list]:
    """Load ``filename`` into ``model`` with mmengine's
    ``load_checkpoint`` (``strict=False``, as ``Runner`` loads
    ``load_from``) and return the keys its report names: ``missing``
    (without BN's ``num_batches_tracked``, which mmengine leaves out),
    ``unexpected`` and ``mismatched`` (shape)."""
    logger = logging.getLogger(f'rss_mmseg.test_zoo_load.{id(model)}')
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = _Messages()
    logger.addHandler(handler)
    try:
        load_checkpoint(model, filename, map_location='cpu', logger=logger)
    finally:
        logger.removeHandler(handler)
    text = '\n'.join(handler.messages)

    def listed(what: str) -> list:
        found = re.search(rf'{what} in source state_dict: (.*)', text)
        return found.group(1).split(', ') if found else []

    return dict(
        missing=listed('missing keys'),
        unexpected=listed('unexpected key'),
        mismatched=re.findall(r'size mismatch for ([\w.]+):', text))


def _marked(checkpoint: dict) -> dict:
    """Every tensor of the checkpoint filled with values of its own."""
    generator = torch.Generator().manual_seed(0)
    for i, tensor in enumerate(checkpoint['state_dict'].values()):
        if tensor.is_floating_point():
            tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
        else:  # BN's num_batches_tracked
            tensor.fill_(i + 1)
    return checkpoint


# model configs already checked (their losses left out: they hold no
# tensors, so configs that differ only there, or only outside the model,
# load the same), by config name
CHECKED: Dict[str, str] = {}


def _without_losses(node):
    if isinstance(node, dict):
        return {
            k: _without_losses(v)
            for k, v in node.items() if k not in ('loss', 'loss_decode')
        }
    if isinstance(node, (list, tuple)):
        return [_without_losses(v) for v in node]
    return node


@pytest.fixture(scope='module')
def stand_ins(tmp_path_factory):
    """url -> (torch.hub dir holding its stand-in, the stand-in), made
    once per URL."""
    made, files = {}, []

    def get(config: str, url: str):
        if url not in made:
            hub_dir = str(tmp_path_factory.mktemp('torch_hub'))
            checkpoint = _marked(model_zoo_checkpoint(config, url))
            files.append(cache_as_download(checkpoint, url, hub_dir))
            made[url] = (hub_dir, checkpoint)
        return made[url]

    yield get
    for path in files:  # 175 MB each
        os.remove(path)


def _load_report_of_file(model, checkpoint: dict, path: str) -> dict:
    """``load_report`` of ``checkpoint`` saved to the local ``path``
    (removed afterwards)."""
    torch.save(checkpoint, path)
    try:
        return load_report(model, path)
    finally:
        os.remove(path)


def zoo_key(model: torch.nn.Module, key: str) -> str:
    """The key of a model's tensor in a checkpoint of the plain model."""
    wrapped = 'decode_head.head.'
    if type(model.decode_head).__name__ == 'RSSHead' and key.startswith(
            wrapped):
        return 'decode_head.' + key[len(wrapped):]
    return key


def test_configs_found():
    names = {osp.basename(p) for p in CONFIGS}
    assert EXPECTED <= names, sorted(EXPECTED - names)


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.basename(p) for p in CONFIGS])
def test_zoo_checkpoint_fills_every_parameter(path, stand_ins, monkeypatch):
    cfg = Config.fromfile(path)
    if not is_url(cfg.get('load_from')):
        pytest.skip(f'load_from is not a model-zoo URL: {cfg.load_from}')
    same = repr((cfg.load_from, _without_losses(cfg.model.to_dict())))
    if same in CHECKED:  # e.g. lovasz-finetune: ce-continued's model
        print(f'the model of {CHECKED[same]}, checked')
        return
    hub_dir, checkpoint = stand_ins(path, cfg.load_from)
    source = checkpoint['state_dict']
    model = build_untrained(cfg)
    monkeypatch.setattr(torch.hub, '_hub_dir', hub_dir)  # no download
    report = load_report(model, cfg.load_from)
    assert report['missing'] == [] and report['mismatched'] == [], report
    assert report['unexpected'], 'the auxiliary head is dropped'
    assert sorted(report['unexpected']) == sorted(
        k for k in source if k.startswith(UNUSED_PREFIX))
    # every tensor of the model is the checkpoint's, and every tensor of
    # the checkpoint outside the auxiliary head is used
    own = {zoo_key(model, k): v for k, v in model.state_dict().items()}
    assert set(own) == {
        k
        for k in source if not k.startswith(UNUSED_PREFIX)
    }, sorted(set(own) ^ set(source))
    assert {k.split('.')[0] for k in own} == {'backbone', 'decode_head'}
    differ = [k for k, v in own.items() if not torch.equal(v, source[k])]
    assert differ == [], differ[:10]
    CHECKED[same] = osp.basename(path)


def test_a_checkpoint_without_the_decode_head_is_found_wanting(
        stand_ins, tmp_path):
    """A backbone-only checkpoint (e.g. ImageNet weights) leaves the decode
    head missing: the report names its keys."""
    cfg = Config.fromfile(RSS_CITYSCAPES)
    _, checkpoint = stand_ins(RSS_CITYSCAPES, cfg.load_from)
    backbone_only = dict(
        meta=checkpoint['meta'],
        state_dict={
            k: v
            for k, v in checkpoint['state_dict'].items()
            if k.startswith('backbone.')
        })
    report = _load_report_of_file(
        build_untrained(cfg), backbone_only,
        str(tmp_path / 'backbone_only.pth'))
    assert 'decode_head.head.conv_seg.weight' in report['missing'], report
    assert all(k.startswith('decode_head.head.') for k in report['missing'])
    assert report['unexpected'] == []


def test_a_checkpoint_of_another_class_count_is_found_wanting(
        stand_ins, tmp_path):
    """The VOC12aug model (21 classes) in the Cityscapes one (19): the
    classifier's shapes differ and the report names them."""
    voc = osp.join(FINETUNE, f'ce-continued_{VOC12AUG}')
    _, checkpoint = stand_ins(voc, Config.fromfile(voc).load_from)
    report = _load_report_of_file(
        build_untrained(Config.fromfile(RSS_CITYSCAPES)), checkpoint,
        str(tmp_path / 'voc12aug.pth'))
    assert set(report['mismatched']) == {
        'decode_head.head.conv_seg.weight', 'decode_head.head.conv_seg.bias'
    }, report
    assert report['missing'] == []
