"""Dry runs of the GPU-scale RSS configs on a CPU.

Used by tests/test_gpu_config_dry_runs.py.

The helpers build the only overrides a dry run needs (``dry_run_overrides``):
the fake dataset's ``data_root`` (every dataloader, and each dataset inside a
``ConcatDataset``), small sizes (a 64x64 training crop, pad and
``data_preprocessor.size``; every resize scale and a sliding-window test
stride scaled by the same factor), 2 iterations (validation and checkpoint
at the end), batch 2, no worker processes, and no pretrained-weight download
(the machine is offline). Everything else -- mmseg's dataset classes, the
configs' pipelines, hooks, optim wrapper, schedules -- is the config's own.

A config that fine-tunes a model-zoo checkpoint (``load_from`` an http(s)
URL, ``configs/rss/finetune/*_deeplabv3plus_*``) keeps its ``load_from``:
the driver writes a stand-in for that file where ``torch.hub`` caches the
URL (``WORK_DIR/torch_hub/checkpoints/<file name of the URL>``, with
``torch.hub.set_dir``), so mmengine's own http loader finds it "downloaded"
and loads it as it would the real one. The stand-in has the real file's key
layout: ``{'meta': ..., 'state_dict': ...}`` of the stock mmseg model the
config descends from (its first ``mmseg::`` base, decode and auxiliary
heads as the model zoo trained them, freshly initialized weights;
``model_zoo_checkpoint``).

Run as a script it is the per-config driver: it builds those overrides for
CONFIG and runs ``tools/train.py`` and then ``tools/test.py`` on the
checkpoint, in one process (one interpreter start instead of two)::

    python tests/gpu_dry_run.py CONFIG WORK_DIR --fake-root FAKE [--amp]

Configs that train with ``AmpOptimWrapper`` (and ``--amp``) run from a copy
with ``tests.cpu_amp`` in ``custom_imports`` and
``optim_wrapper.dtype='bfloat16'``: the real AMP path, bf16 on the CPU, with
a 32x32 crop where PSR allows it (bf16 convolutions are slow on a CPU).
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlparse

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DRY_RUN_ITERS = 2
# the shorter side of the training crop in a dry run
DRY_RUN_CROP = 64
# bf16 autocast on a CPU without AVX512-BF16/AMX runs convolutions about 20x
# slower than fp32 (2.2 s instead of 0.1 s for one 256->256 3x3 conv on
# 2x16x16 here): the AMP dry runs use a smaller crop where PSR allows it
# (ProgressiveScaleHook refuses a crop smaller than its finest grid)
DRY_RUN_CROP_AMP = 32
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
# pipeline transforms and the keys that hold a size in pixels
SIZE_KEYS = {
    'RandomResize': ('scale', ),
    'Resize': ('scale', ),
    'RandomCrop': ('crop_size', ),
    'Pad': ('size', ),
}
CPU_SCALE_TAGS = ('_synthetic-', '_camvid-')


def gpu_scale_configs() -> List[str]:
    """Every RSS config meant for GPUs: ``configs/rss/**`` except the ones
    on the embedded synthetic set and CamVid (the CPU configs)."""
    paths = glob.glob(
        osp.join(REPO_ROOT, 'configs', 'rss', '**', '*.py'), recursive=True)
    return sorted(
        p for p in paths
        if not any(tag in osp.basename(p) for tag in CPU_SCALE_TAGS))


def _datasets(cfg) -> Iterator[Tuple[str, dict]]:
    """``(key, dataset)`` of every dataset the dataloaders build, looking
    inside ``ConcatDataset``/``RepeatDataset`` wrappers."""
    for loader in LOADERS:
        stack = [(f'{loader}.dataset', cfg[loader]['dataset'])]
        while stack:
            key, dataset = stack.pop(0)
            if 'datasets' in dataset:
                stack += [(f'{key}.datasets.{i}', d)
                          for i, d in enumerate(dataset['datasets'])]
            elif 'dataset' in dataset:
                stack.append((f'{key}.dataset', dataset['dataset']))
            else:
                yield key, dataset


def dataset_types(cfg) -> List[str]:
    """The dataset classes (``'PascalVOCDataset'``, ...) a config reads."""
    return sorted({d['type'] for _, d in _datasets(cfg)})


def _scaled(value: Any, factor: float) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(max(1, int(round(v * factor))) for v in value)
    return max(1, int(round(value * factor)))


def finest_psr_grid(cfg) -> int:
    """The largest side of any action grid a ``ProgressiveScaleHook`` (or an
    image-level head's ``scales``) uses: ``ProgressiveScaleHook`` refuses a
    crop smaller than that. 0 without PSR."""
    sides = [0]
    specs = [
        h.get('scales', []) for h in cfg.get('custom_hooks', [])
        if h.get('type') == 'ProgressiveScaleHook'
    ]
    specs.append(cfg.model.decode_head.get('scales') or [])
    for spec in specs:
        for grid in spec if isinstance(spec, (list, tuple)) else [spec]:
            if isinstance(grid, (list, tuple)):
                sides += [int(g) for g in grid]
            elif isinstance(grid, int):
                sides.append(grid)
    return max(sides)


def dry_run_overrides(cfg,
                      data_root: str,
                      crop_side: int = DRY_RUN_CROP) -> Dict[str, Any]:
    """``--cfg-options`` that shrink config ``cfg`` to a seconds-long CPU run
    on the fake dataset at ``data_root`` (see the module docstring).

    The training crop (``RandomCrop``, ``Pad``, ``data_preprocessor.size``)
    becomes ``crop_side`` x ``crop_side``; every resize scale and the
    sliding-window test crop and stride shrink by the factor that takes the
    config's crop's shorter side to ``crop_side``.
    """
    crop = cfg.model.data_preprocessor.get('size') or cfg.get('crop_size')
    factor = crop_side / min(crop)
    square = (crop_side, crop_side)
    opts: Dict[str, Any] = {
        'train_cfg.max_iters': DRY_RUN_ITERS,
        'train_cfg.val_interval': DRY_RUN_ITERS,
        'default_hooks.checkpoint.interval': DRY_RUN_ITERS,
        'default_hooks.logger.interval': 1,
        'train_dataloader.batch_size': 2,
        'model.data_preprocessor.size': square,
    }
    for loader in LOADERS:
        opts[f'{loader}.num_workers'] = 0
        opts[f'{loader}.persistent_workers'] = False
    for key, dataset in _datasets(cfg):
        opts[f'{key}.data_root'] = data_root
        for i, transform in enumerate(dataset.get('pipeline', [])):
            for name in SIZE_KEYS.get(transform.get('type'), ()):
                if transform.get(name) is None:
                    continue
                opts[f'{key}.pipeline.{i}.{name}'] = (
                    square if name in ('crop_size', 'size') else _scaled(
                        transform[name], factor))
    test_cfg = cfg.model.get('test_cfg') or {}
    if test_cfg.get('mode') == 'slide':
        opts['model.test_cfg.crop_size'] = square
        opts['model.test_cfg.stride'] = _scaled(test_cfg['stride'], factor)
    # offline: no ImageNet weights (open-mmlab:// or https:// checkpoints)
    if cfg.model.get('pretrained') is not None:
        opts['model.pretrained'] = None
    if (cfg.model.backbone.get('init_cfg') or {}).get('type') == 'Pretrained':
        opts['model.backbone.init_cfg'] = None
    return opts


def is_url(path: Optional[str]) -> bool:
    """Whether a ``load_from`` is downloaded by mmengine (http or https)."""
    return isinstance(path, str) and path.startswith(('http://', 'https://'))


def zoo_base_config(config: str) -> str:
    """The file of the first ``mmseg::`` config along ``config``'s
    ``_base_`` chain (depth first): the stock config whose model the
    model-zoo checkpoint in its ``load_from`` holds."""
    from mmengine.config import Config
    for base in Config._get_base_files(config):
        path = Config._get_cfg_path(base, config)[0]
        if base.startswith('mmseg::'):
            return path
        try:
            return zoo_base_config(path)
        except LookupError:
            continue
    raise LookupError(f'{config}: no mmseg:: config among its bases')


def model_zoo_checkpoint(config: str, url: str = '') -> Dict[str, Any]:
    """A checkpoint with the layout of the mmseg model-zoo file that
    ``config`` fine-tunes: ``{'meta': ..., 'state_dict': ...}`` of the
    model of its stock mmseg base (``zoo_base_config``), built without
    pretrained weights and freshly initialized (SyncBN keys are BN's), with
    the meta fields the v0.x zoo files carry (plain Python values)."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS, MODELS

    import rss_mmseg  # noqa: F401 (registers mmseg's modules)
    path = zoo_base_config(config)
    stock = Config.fromfile(path)
    stock.model.pop('pretrained', None)
    stock.model.backbone.pop('init_cfg', None)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(stock.model)
        metainfo = DATASETS.get(dataset_types(stock)[0]).METAINFO
    meta = dict(
        mmseg_version='0.5.0',
        mmcv_version='1.0.0',
        config=stock.text,
        exp_name=osp.basename(path),
        seed=None,
        CLASSES=tuple(metainfo['classes']),
        PALETTE=[list(color) for color in metainfo['palette']],
        iter=stock.train_cfg.max_iters,
        epoch=1,
        stand_in_for=url)
    return dict(meta=meta, state_dict=model.state_dict())


def cache_as_download(checkpoint: Dict[str, Any], url: str,
                      hub_dir: str) -> str:
    """Save ``checkpoint`` where ``torch.hub`` (``get_dir()`` =
    ``hub_dir``) keeps the download of ``url``; returns the path."""
    import torch
    path = osp.join(hub_dir, 'checkpoints',
                    osp.basename(urlparse(url).path))
    os.makedirs(osp.dirname(path), exist_ok=True)
    torch.save(checkpoint, path)
    return path


def as_cfg_options(overrides: Dict[str, Any]) -> List[str]:
    """Format overrides for the tools' ``--cfg-options``."""
    return [f'{key}={value}' for key, value in overrides.items()]


def dump_with_cpu_amp(cfg, path: str) -> str:
    """Write ``cfg`` to ``path`` with ``tests.cpu_amp`` in its
    ``custom_imports`` (lifts AmpOptimWrapper's CUDA assertion) and its
    ``RSSTestAmpProbeHook`` (records what autocast did); returns ``path``."""
    imports = cfg.get('custom_imports', {}).get('imports', [])
    imports = [imports] if isinstance(imports, str) else list(imports)
    cfg.custom_imports = dict(
        imports=imports + ['tests.cpu_amp'], allow_failed_imports=False)
    cfg.custom_hooks = list(cfg.get('custom_hooks',
                                    [])) + [dict(type='RSSTestAmpProbeHook')]
    cfg.dump(path)
    return path


def uses_amp(cfg) -> bool:
    """Whether ``cfg`` trains with mmengine's AmpOptimWrapper."""
    return cfg.optim_wrapper.get('type') == 'AmpOptimWrapper'


def _skip_yapf() -> None:
    """Log and dump the config text unformatted: mmengine formats it with
    yapf (~0.7 s of CPU a call) about five times a run (the Config log line
    and the dumped copy of each of train and test, the checkpoint's meta).
    Test-time only; the text is the same Python, only laid out otherwise."""
    import mmengine.config.config as mmengine_config
    mmengine_config.FormatCode = lambda text, **kwargs: (text, False)


def _load_tool(name: str):
    from tests.conftest import load_tool
    return load_tool(f'{name}.py', f'rss_dry_run_{name}')


def _run_tool(name: str, argv: List[str]) -> None:
    """``tools/<name>.py`` with ``argv``, in this process; prints its wall
    and CPU time."""
    tool = _load_tool(name)
    sys.argv = [f'tools/{name}.py', *argv]
    start, start_cpu = time.perf_counter(), time.process_time()
    tool.main()
    print(
        f'[dry-run] {name}: {time.perf_counter() - start:.1f} s '
        f'({time.process_time() - start_cpu:.1f} s CPU)',
        flush=True)


def _wait_for_a_new_timestamp(work_dir: str) -> None:
    """mmengine names a run's logger, message hub and visualizer after the
    second it started (``<config>_<YYYYmmdd_HHMMSS>``); a second run in the
    same process and second would reuse the first one's."""
    used = {
        d
        for d in os.listdir(work_dir) if osp.isdir(osp.join(work_dir, d))
    }
    while time.strftime('%Y%m%d_%H%M%S') in used:
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('work_dir')
    parser.add_argument(
        '--fake-root',
        required=True,
        help='folder written by rss_mmseg.datasets.fake_layouts')
    parser.add_argument(
        '--amp', action='store_true', help="pass --amp to tools/train.py")
    args = parser.parse_args()
    sys.path.insert(0, REPO_ROOT)
    from mmengine.config import Config

    from rss_mmseg.datasets.fake_layouts import (DATA_ROOTS,
                                                 layout_for_dataset_type)

    _skip_yapf()
    os.makedirs(args.work_dir, exist_ok=True)
    cfg = Config.fromfile(args.config)
    layouts = {layout_for_dataset_type(t) for t in dataset_types(cfg)}
    assert len(layouts) == 1, f'{args.config}: datasets of {layouts}'
    data_root = osp.join(args.fake_root, DATA_ROOTS[layouts.pop()])
    amp = args.amp or uses_amp(cfg)
    crop_side = max(DRY_RUN_CROP_AMP, finest_psr_grid(cfg)) if amp \
        else DRY_RUN_CROP
    overrides = dry_run_overrides(cfg, data_root, crop_side)
    zoo = None
    if is_url(cfg.get('load_from')):  # offline: a stand-in, as downloaded
        import torch
        start = time.perf_counter()
        hub_dir = osp.join(args.work_dir, 'torch_hub')
        zoo = dict(
            url=cfg.load_from,
            base=zoo_base_config(args.config),
            path=cache_as_download(
                model_zoo_checkpoint(args.config, cfg.load_from),
                cfg.load_from, hub_dir))
        torch.hub.set_dir(hub_dir)
        print(
            f'[dry-run] model-zoo stand-in {zoo["path"]}: '
            f'{time.perf_counter() - start:.1f} s',
            flush=True)
    config = args.config
    if amp:  # the real AmpOptimWrapper path, in bf16 on the CPU
        # not in work_dir itself, where Runner.dump_config writes the
        # merged config under the same name
        os.makedirs(osp.join(args.work_dir, 'cpu_amp'), exist_ok=True)
        config = dump_with_cpu_amp(
            cfg, osp.join(args.work_dir, 'cpu_amp',
                          osp.basename(args.config)))
        overrides['optim_wrapper.dtype'] = 'bfloat16'
    with open(osp.join(args.work_dir, 'dry_run.json'), 'w') as f:
        json.dump(
            dict(
                config=config,
                amp=amp,
                overrides=overrides,
                zoo_checkpoint=zoo),
            f,
            indent=1,
            default=str)
    common = [
        '--work-dir', args.work_dir, '--cfg-options',
        *as_cfg_options(overrides)
    ]
    _run_tool('train', [config, *(['--amp'] if args.amp else []), *common])
    _wait_for_a_new_timestamp(args.work_dir)
    checkpoint = osp.join(args.work_dir, f'iter_{DRY_RUN_ITERS}.pth')
    _run_tool('test', [config, checkpoint, *common])
    return 0


if __name__ == '__main__':
    sys.exit(main())
