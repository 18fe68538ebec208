"""Seconds per training iteration and peak memory of configs, side by side.

Each config is measured in its own subprocess (so that peak memory is its
own), in the order given, repeated ``--repeats`` times in alternation (A B A B
...); the table reports medians over repeats of the per-run median s/iter
(after warm-up) and of the peak memory added by training. On a GPU, peak
memory is ``torch.cuda.max_memory_allocated``; on a CPU, the growth of the
process's peak resident set once the model and data loader are built.

    python tools/analysis_tools/train_speed.py CFG_A CFG_B [--iters 30]
        [--warmup 10] [--repeats 3] [--cfg-options k=v ...]
"""
import argparse
import json
import os
import os.path as osp
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Dict, List


def _rss_mib() -> float:
    with open('/proc/self/statm') as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf('SC_PAGE_SIZE') / 2**20


def measure_one(cfg_path: str, iters: int, warmup: int,
                options: List[str]) -> Dict[str, float]:
    """Build the runner for ``cfg_path`` and time ``iters`` train steps."""
    import torch
    from mmengine.config import Config, DictAction
    from mmengine.runner import Runner

    import rss_mmseg  # noqa: F401
    from rss_mmseg.engine.hooks import PolicyAnchorHook

    cfg = Config.fromfile(cfg_path)
    if options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(['--o', *options]).o)
    cfg.work_dir = osp.join('work_dirs', 'train_speed',
                            osp.splitext(osp.basename(cfg_path))[0])
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner._init_model_weights()
    # no hook runs here: a KL-anchored config gets its frozen reference as
    # PolicyAnchorHook would build it, from the current weights (the cost
    # of a step does not depend on them)
    for hook in runner.hooks:
        if isinstance(hook, PolicyAnchorHook):
            hook.attach(runner.model)
    runner.model.train()
    # the loop's own (restarting) iterator; a second iter() of a
    # persistent-worker DataLoader can end at once
    data_iter = runner.train_loop.dataloader_iterator
    cuda = torch.cuda.is_available()
    rss_before = _rss_mib()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(warmup + iters):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        data = next(data_iter)
        runner.model.train_step(data, optim_wrapper=runner.optim_wrapper)
        if cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak = max(peak - rss_before, 0.0)
    return dict(s_per_iter=statistics.median(times), peak_mib=peak,
                threads=torch.get_num_threads())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--iters', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--cfg-options', nargs='+', default=[])
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument('--_child', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args._child:
        result = measure_one(args.configs[0], args.iters, args.warmup,
                             args.cfg_options)
        print('RESULT ' + json.dumps(result))
        return

    runs: Dict[str, List[dict]] = {cfg: [] for cfg in args.configs}
    for rep in range(args.repeats):
        for cfg in args.configs:
            cmd = [sys.executable, __file__, cfg, '--iters', str(args.iters),
                   '--warmup', str(args.warmup), '--_child']
            if args.cfg_options:
                cmd += ['--cfg-options', *args.cfg_options]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f'{cfg} failed:\n{out.stderr[-3000:]}')
            line = [x for x in out.stdout.splitlines()
                    if x.startswith('RESULT ')][-1]
            runs[cfg].append(json.loads(line[len('RESULT '):]))
            print(f'[{rep + 1}/{args.repeats}] {osp.basename(cfg)}: '
                  f'{runs[cfg][-1]}', flush=True)

    import torch
    ref = args.configs[0]
    threads = runs[ref][0]['threads']
    summary = {}
    for cfg, results in runs.items():
        summary[cfg] = {
            key: statistics.median(r[key] for r in results)
            for key in ('s_per_iter', 'peak_mib')
        }
    print(f'\nmachine: {platform.processor() or platform.machine()}, '
          f'torch threads: {threads}, '
          f'cuda: {torch.cuda.is_available()}, repeats: {args.repeats}, '
          f'iters: {args.iters} after {args.warmup} warm-up')
    print(f'{"config":<60} {"s/iter":>8} {"x ref":>6} {"peak MiB":>9} '
          f'{"x ref":>6}')
    for cfg, s in summary.items():
        print(f'{osp.basename(cfg):<60} {s["s_per_iter"]:>8.4f} '
              f'{s["s_per_iter"] / summary[ref]["s_per_iter"]:>6.3f} '
              f'{s["peak_mib"]:>9.1f} '
              f'{s["peak_mib"] / max(summary[ref]["peak_mib"], 1e-9):>6.3f}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(summary=summary, runs=runs), f, indent=2)


if __name__ == '__main__':
    main()
