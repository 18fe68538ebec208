"""Soak: a long run with a forced crash and --resume ends like a clean one.

Trains CONFIG twice in subprocesses (``tools/train.py``):

1. uninterrupted, ``--iters`` iterations, a checkpoint every
   ``--ckpt-interval``;
2. the same, killed (SIGKILL, no clean shutdown) as soon as the checkpoint
   of ``--interrupt-at`` is written, then continued with ``--resume``.

It prints both final val mIoUs, their difference and the largest difference
of the logged training losses after the interruption (0 when resume is
exact, see RandomStateHook), and writes them to ``--out`` (JSON). A benchmark,
not a CI test: the default 2000 iterations take hours on a CPU.

    python tools/analysis_tools/soak.py [CONFIG] [--iters 2000]
        [--ckpt-interval 500] [--interrupt-at 1000] [--work-dir DIR]
        [--data-root DIR | --quick] [--out soak.json] [--cfg-options k=v ...]

``--quick`` generates a 16-image 64x64 synthetic set in the work dir and
trains on it with batch 2 and in-process loading (a smoke run in minutes).
"""
import argparse
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from bench_report import load_scalars  # noqa: E402

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(
    REPO_ROOT, 'configs/rss/rss-pixel_fast-scnn_1xb8-1k_synthetic-128x128.py')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
QUICK_DATA = dict(num_train=16, num_val=4, size=64, seed=0)


def log(msg: str) -> None:
    print(f'[soak] {msg}', flush=True)


def format_option(key: str, value: Any) -> str:
    if isinstance(value, tuple):
        value = '(' + ','.join(str(v) for v in value) + ')'
    return f'{key}={value}'


def run_options(args: argparse.Namespace, cfg,
                data_root: Optional[str]) -> List[str]:
    """``--cfg-options`` shared by both runs."""
    old = int(cfg.train_cfg.max_iters)
    opts: Dict[str, Any] = {
        'train_cfg.max_iters': args.iters,
        'train_cfg.val_interval': args.val_interval or args.iters,
        'default_hooks.checkpoint.interval': args.ckpt_interval,
        # keep every checkpoint the resume may need
        'default_hooks.checkpoint.max_keep_ckpts': -1,
        'default_hooks.logger.interval': args.log_interval,
    }
    scheds = cfg.get('param_scheduler') or []
    scheds = {'': scheds} if isinstance(scheds, dict) else {
        f'.{i}': s
        for i, s in enumerate(scheds)
    }
    for suffix, sched in scheds.items():
        if sched.get('end') == old:  # the schedule spans the whole run
            opts[f'param_scheduler{suffix}.end'] = args.iters
    if data_root is not None:
        for loader in LOADERS:
            opts[f'{loader}.dataset.data_root'] = data_root
    if args.quick:
        opts['train_dataloader.batch_size'] = 2
        opts['model.data_preprocessor.size'] = (QUICK_DATA['size'], ) * 2
        for loader in LOADERS:
            opts[f'{loader}.num_workers'] = 0
            opts[f'{loader}.persistent_workers'] = False
    out = [format_option(k, v) for k, v in opts.items()]
    return out + list(args.cfg_options or [])


def train_command(config: str, work_dir: str, options: List[str],
                  resume: bool = False) -> List[str]:
    cmd = [
        sys.executable,
        osp.join(REPO_ROOT, 'tools/train.py'), config, '--work-dir', work_dir
    ]
    if resume:
        cmd.append('--resume')
    return cmd + ['--cfg-options', *options]


def _env() -> Dict[str, str]:
    path = os.environ.get('PYTHONPATH')
    return dict(
        os.environ,
        PYTHONPATH=REPO_ROOT if not path else f'{REPO_ROOT}:{path}')


def run(cmd: List[str], log_path: str) -> float:
    """Run ``cmd`` to completion (output to ``log_path``); its seconds."""
    start = time.time()
    with open(log_path, 'a') as out:
        result = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=_env())
    if result.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed ({result.returncode}); '
                           f'see {log_path}')
    return time.time() - start


def latest_checkpoint(work_dir: str) -> Optional[str]:
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return f.read().strip()


def run_and_kill(cmd: List[str], log_path: str, work_dir: str,
                 interrupt_at: int, timeout: float) -> float:
    """Start ``cmd``, SIGKILL it (and its workers) once the checkpoint of
    ``interrupt_at`` is recorded as the latest; its seconds."""
    target = osp.join(work_dir, f'iter_{interrupt_at}.pth')
    start = time.time()
    with open(log_path, 'a') as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(),
            start_new_session=True)  # its own group: workers die with it
        try:
            # CheckpointHook writes last_checkpoint after the file is saved
            while latest_checkpoint(work_dir) != target:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f'training ended ({proc.returncode}) before '
                        f'{target} was written; see {log_path}')
                if time.time() - start > timeout:
                    raise RuntimeError(f'no {target} after {timeout:.0f} s')
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return time.time() - start


def read_scalars(work_dir: str) -> Dict[str, Any]:
    """Train losses by iteration and the last val mIoU, merged over the
    launches of a resumed run (``bench_report.load_scalars``)."""
    train, val = load_scalars(work_dir)
    losses = {step: v['loss'] for step, v in train.items() if 'loss' in v}
    miou = val[max(val)]['mIoU'] if val else None
    return dict(losses=losses, miou=miou)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG)
    parser.add_argument('--iters', type=int, default=2000)
    parser.add_argument('--ckpt-interval', type=int, default=500)
    parser.add_argument('--interrupt-at', type=int, default=1000)
    parser.add_argument(
        '--val-interval',
        type=int,
        default=None,
        help='validation interval (default: only at the end)')
    parser.add_argument('--log-interval', type=int, default=10)
    parser.add_argument('--work-dir', default='work_dirs/soak')
    parser.add_argument('--data-root', default=None)
    parser.add_argument(
        '--quick',
        action='store_true',
        help='tiny generated data set, batch 2 (smoke run)')
    parser.add_argument('--timeout', type=float, default=24 * 3600)
    parser.add_argument('--out', default=None, help='JSON (default: '
                        'WORK_DIR/soak.json)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        help='extra k=v overrides for both runs')
    args = parser.parse_args(argv)
    for name in ('iters', 'ckpt_interval', 'interrupt_at', 'log_interval'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got '
                         f'{getattr(args, name)}')
    if args.interrupt_at % args.ckpt_interval or \
            not args.interrupt_at < args.iters:
        parser.error(
            f'--interrupt-at ({args.interrupt_at}) must be a multiple of '
            f'--ckpt-interval ({args.ckpt_interval}) below --iters '
            f'({args.iters})')
    if args.quick and args.data_root:
        parser.error('--quick generates its own data; drop --data-root')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, REPO_ROOT)
    from mmengine.config import Config

    from rss_mmseg.datasets.synthetic import ensure_synthetic_dataset

    cfg = Config.fromfile(args.config)
    work_dir = osp.abspath(args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    data_root = args.data_root
    if args.quick:
        data_root = ensure_synthetic_dataset(
            osp.join(work_dir, 'data'), **QUICK_DATA)
    options = run_options(args, cfg, data_root)
    clean_dir = osp.join(work_dir, 'uninterrupted')
    crash_dir = osp.join(work_dir, 'interrupted')
    for folder in (clean_dir, crash_dir):
        if glob.glob(osp.join(folder, '*.pth')):
            raise SystemExit(f'{folder} holds checkpoints of an earlier soak: '
                             'remove it or choose another --work-dir')

    log(f'uninterrupted: {args.iters} iterations -> {clean_dir}')
    clean_s = run(
        train_command(args.config, clean_dir, options),
        osp.join(work_dir, 'uninterrupted.log'))
    log(f'interrupted: killed after iter_{args.interrupt_at}.pth -> '
        f'{crash_dir}')
    crash_log = osp.join(work_dir, 'interrupted.log')
    killed_s = run_and_kill(
        train_command(args.config, crash_dir, options), crash_log, crash_dir,
        args.interrupt_at, args.timeout)
    resumed_from = latest_checkpoint(crash_dir)
    log(f'resuming from {resumed_from}')
    resumed_s = run(
        train_command(args.config, crash_dir, options, resume=True),
        crash_log)

    clean, crashed = read_scalars(clean_dir), read_scalars(crash_dir)
    after = [
        it for it in sorted(clean['losses'])
        if it > args.interrupt_at and it in crashed['losses']
    ]
    loss_diff = max((abs(clean['losses'][it] - crashed['losses'][it])
                     for it in after),
                    default=None)
    miou_diff = None
    if clean['miou'] is not None and crashed['miou'] is not None:
        miou_diff = crashed['miou'] - clean['miou']
    report = dict(
        config=osp.relpath(osp.abspath(args.config), REPO_ROOT),
        iters=args.iters,
        ckpt_interval=args.ckpt_interval,
        interrupt_at=args.interrupt_at,
        resumed_from=resumed_from,
        quick=args.quick,
        cfg_options=options,
        uninterrupted=dict(miou=clean['miou'], seconds=round(clean_s, 1)),
        interrupted=dict(
            miou=crashed['miou'],
            seconds_until_kill=round(killed_s, 1),
            seconds_resumed=round(resumed_s, 1)),
        miou_diff=miou_diff,
        loss_iters_compared=len(after),
        max_abs_loss_diff=loss_diff)
    out = args.out or osp.join(work_dir, 'soak.json')
    with open(out, 'w') as f:
        json.dump(report, f, indent=2)
    print(f'final mIoU uninterrupted: {clean["miou"]}')
    print(f'final mIoU interrupted at {args.interrupt_at} + resumed: '
          f'{crashed["miou"]}')
    print(f'difference: {miou_diff}')
    print(f'max |loss difference| over {len(after)} logged iterations after '
          f'the interruption: {loss_diff}')
    print(f'written {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
