"""Time one image-level RSS training step and its reward, for several K.

Builds a config's model (default: the CamVid image-level one), feeds it
random batches of the training size, and times forward + backward of the
whole step for each K, interleaved over rounds (medians), and the share of
the step spent in the reward call. CE on the same model is timed alongside
as the reference::

    OMP_NUM_THREADS=1 python tools/analysis_tools/bench_image_step.py \\
        --ks 2 8 32 --rounds 10

A config whose head has several losses switched per PSR grid is timed with
the ones of that grid, e.g. ``--scale 32 --ks 4 --losses loss_local``.
"""
import argparse
import json
import statistics
import time
from typing import Dict, List

import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

import rss_mmseg  # noqa: F401

DEFAULT = 'configs/rss/rss-image_fast-scnn_1xb8-4k_camvid-176x240.py'
CE = 'configs/baselines/ce_fast-scnn_1xb8-4k_camvid-176x240.py'


def batch(cfg: Config, gen: torch.Generator):
    h, w = cfg.model.data_preprocessor.size
    b = cfg.train_dataloader.batch_size
    c = cfg.model.decode_head.num_classes
    inputs = torch.randn(b, 3, h, w, generator=gen)
    samples = []
    for _ in range(b):
        s = SegDataSample(gt_sem_seg=PixelData(
            data=torch.randint(0, c, (1, h, w), generator=gen)))
        s.set_metainfo(dict(img_shape=(h, w), pad_shape=(h, w)))
        samples.append(s)
    return inputs, samples


def step_time(model, inputs, samples) -> float:
    start = time.perf_counter()
    losses = model.loss(inputs, samples)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    return time.perf_counter() - start


class TimedReward:
    """The reward, its calls timed (``__call__``, ``score_cells`` on PSR
    grids and ``score_cell_variants`` for LocalExpectationLoss); everything
    else is the reward's."""

    def __init__(self, reward, times: List[float]) -> None:
        self._reward, self._times = reward, times
        for name in ('score_cells', 'score_cell_variants'):
            if hasattr(reward, name):
                setattr(self, name, self._timed(getattr(reward, name)))

    def _timed(self, fn):

        def call(*a, **kw):
            start = time.perf_counter()
            out = fn(*a, **kw)
            self._times.append(time.perf_counter() - start)
            return out

        return call

    def __call__(self, *a, **kw):
        return self._timed(self._reward)(*a, **kw)

    def __getattr__(self, name: str):
        return getattr(self._reward, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', default=DEFAULT)
    parser.add_argument('--ce-config', default=CE)
    parser.add_argument('--ks', type=int, nargs='+', default=[2, 8, 32])
    parser.add_argument('--scale', type=int, default=32,
                        help='PSR grid of the timed steps (0: full res)')
    parser.add_argument('--rounds', type=int, default=10)
    parser.add_argument(
        '--losses', nargs='+',
        help='loss_name(s) trained in the timed steps, for a head with '
        'several losses switched per grid (ProgressiveScaleHook('
        'loss_names=...)); default: all of them')
    parser.add_argument('--out', help='write the results as JSON')
    args = parser.parse_args()
    register_all_modules()
    cfg = Config.fromfile(args.config)
    gen = torch.Generator().manual_seed(0)
    inputs, samples = batch(cfg, gen)

    models: Dict[str, torch.nn.Module] = dict()
    ce_cfg = Config.fromfile(args.ce_config)
    models['ce'] = MODELS.build(ce_cfg.model).train()
    reward_time: Dict[str, List[float]] = dict()
    for k in args.ks:
        model = MODELS.build(cfg.model).train()
        model.decode_head.num_samples = k
        model.decode_head.scales = args.scale or None
        model.decode_head.active_losses = args.losses
        name = f'K={k}'
        reward = model.decode_head.reward
        times = reward_time.setdefault(name, [])

        model.decode_head.reward = TimedReward(reward, times)
        models[name] = model
    for m in models.values():  # warm-up
        step_time(m, inputs, samples)
    for t in reward_time.values():
        t.clear()
    steps: Dict[str, List[float]] = {n: [] for n in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            model.zero_grad(set_to_none=True)
            steps[name].append(step_time(model, inputs, samples))
    ce = statistics.median(steps['ce'])
    results = dict(threads=torch.get_num_threads(), scale=args.scale,
                   ce_s=ce, rows=[])
    print(f'threads {torch.get_num_threads()}, grid {args.scale or "full"}, '
          f'{args.rounds} interleaved rounds, medians')
    print(f'{"step":<8}{"s/step":>9}{"x CE":>7}{"reward s":>10}'
          f'{"reward %":>10}')
    for name, t in steps.items():
        med = statistics.median(t)
        r = statistics.median(reward_time[name]) if name in reward_time \
            else 0.0
        results['rows'].append(dict(name=name, s=med, x_ce=med / ce,
                                    reward_s=r, reward_share=r / med))
        print(f'{name:<8}{med:9.3f}{med / ce:7.2f}{r:10.4f}'
              f'{100 * r / med:9.1f}%')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
