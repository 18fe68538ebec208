"""Benchmark CE, pixel-level RSS, image-level RSS, its ablations and reward
fine-tuning of the CE model.

One command trains every method with the same model, data, schedule and seed
(``tools/train.py``, one process and one work dir per run), evaluates on
the val split during training, measures s/iter and peak memory side by side
(``measure_one`` of ``tools/analysis_tools/train_speed.py``, one process per
measurement, methods in alternating order, medians after warm-up), and
writes a table (Markdown, CSV, JSON), plots and a picture grid to
``<results>/<bench>/``. Finished runs are skipped and interrupted ones
resumed, so re-running the same command after an interruption continues
where it stopped; ``--skip-train`` only rebuilds the outputs from what is
there. Every process is forked from one server that has imported torch,
mmseg and rss_mmseg once (``analysis_tools/bench_child.py``): the code is
the one found when the benchmark started.

Fine-tuning methods (``ce-continued``, ``lovasz-finetune``,
``rss-finetune-*``) start from the final checkpoint of the ``ce`` run of the
same seed (``load_from``): that run is added when not requested, and a
fine-tuning run starts once it has finished. They get their own table
(deltas against ``ce-continued``, which trains as many extra iterations
with cross-entropy) and curves. ``--iters`` stretches the from-scratch
runs (the starting ``ce`` runs included); the fine-tuning budget is the
fine-tuning configs' own ``max_iters`` unless ``--finetune-iters``.

    python tools/benchmark.py                  # CamVid, all methods, seed 0
    python tools/benchmark.py --quick          # smoke run, tiny synthetic set
    python tools/benchmark.py --seeds 0 1 2 --jobs 2 --methods ce rss-pixel
    python tools/benchmark.py --methods ce ce-continued lovasz-finetune \\
        rss-finetune-miou rss-finetune-boundary --seeds 0 1 2 --jobs 2
    python tools/benchmark.py --skip-train     # table/plots/pictures only

Layout: ``<results>/<bench>/<method>/seed<N>/`` is the work dir of one run
(``train.log`` holds its output); a run is finished when it holds
``iter_<max_iters>.pth``. Fine-tuning runs with ``--finetune-iters M`` go to
``<method>_<M>it/seed<N>/`` (the starting runs are those of ``<bench>``).
"""
import argparse
import json
import math
import os
import os.path as osp
import platform
import re
import shlex
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # tools/

from analysis_tools import bench_child  # noqa: E402
from analysis_tools import bench_report as report  # noqa: E402


# The methods, in table order; the first is the reference of every ratio.
# A method whose config file does not exist (yet) is skipped with the reason.
# A method with ``start_from`` fine-tunes the final checkpoint of that
# method's run of the same seed (load_from); such methods get their own
# table, whose reference is FINETUNE_REFERENCE.
class Method(NamedTuple):
    level: str
    camvid: str
    quick: Optional[str]
    start_from: Optional[str] = None


_ABL = 'configs/rss/ablations/'
_FT = 'configs/rss/finetune/'
METHODS: Dict[str, Method] = {
    'ce': Method(
        'labels (CE)',
        'configs/baselines/ce_fast-scnn_1xb8-4k_camvid-176x240.py',
        'configs/baselines/ce_fast-scnn_1xb8-1k_synthetic-128x128.py'),
    'rss-pixel': Method(
        'pixel',
        'configs/rss/rss-pixel_fast-scnn_1xb8-4k_camvid-176x240.py',
        'configs/rss/rss-pixel_fast-scnn_1xb8-1k_synthetic-128x128.py'),
    'rss-image': Method(
        'image',
        'configs/rss/rss-image_fast-scnn_1xb8-4k_camvid-176x240.py',
        'configs/rss/rss-image_fast-scnn_1xb8-1k_synthetic-128x128.py'),
    'rss-image-no-psr': Method(
        'image', _ABL + 'rss-image-no-psr_fast-scnn_1xb8-4k_camvid-176x240.py',
        None),
    'rss-image-no-psd': Method(
        'image', _ABL + 'rss-image-no-psd_fast-scnn_1xb8-4k_camvid-176x240.py',
        None),
    'rss-image-local-psd': Method(
        'image',
        _ABL + 'rss-image-local-psd_fast-scnn_1xb8-4k_camvid-176x240.py',
        None),
    'rss-image-recall': Method(
        'image', _ABL + 'rss-image-recall_fast-scnn_1xb8-4k_camvid-176x240.py',
        None),
    'rss-image-pull-by-scale': Method(
        'image',
        _ABL + 'rss-image-pull-by-scale_fast-scnn_1xb8-4k_camvid-176x240.py',
        None),
    'rss-image-syncan': Method(
        'image', _ABL + 'rss-image-syncan_fast-scnn_1xb8-4k_camvid-176x240.py',
        None),
    'rss-image-marginal': Method(
        'image',
        _ABL + 'rss-image-marginal_fast-scnn_1xb8-4k_camvid-176x240.py',
        None),
    'rss-image-early-grids': Method(
        'image',
        _ABL + 'rss-image-early-grids_fast-scnn_1xb8-4k_camvid-176x240.py',
        None),
    'rss-image-marginal-early-grids': Method(
        'image', _ABL +
        'rss-image-marginal-early-grids_fast-scnn_1xb8-4k_camvid-176x240.py',
        None),
    'rss-image-unregularized-32': Method(
        'image', _ABL +
        'rss-image-unregularized-32_fast-scnn_1xb8-4k_camvid-176x240.py',
        None),
    'rss-image-exact-credit': Method(
        'image (confusion oracle)',
        _ABL + 'rss-image-exact-credit_fast-scnn_1xb8-4k_camvid-176x240.py',
        None),
    'rss-image-exact-credit-32': Method(
        'image (confusion oracle)',
        _ABL + 'rss-image-exact-credit-32_fast-scnn_1xb8-4k_camvid-176x240.py',
        None),
    'rss-image-exact-credit-16': Method(
        'image (confusion oracle)',
        _ABL + 'rss-image-exact-credit-16_fast-scnn_1xb8-4k_camvid-176x240.py',
        None),
    'rss-image-exact-mirror-16': Method(
        'image (confusion oracle)',
        _ABL + 'rss-image-exact-mirror-16_fast-scnn_1xb8-4k_camvid-176x240.py',
        None),
    'rss-image-exact-mirror-16-temp0.25': Method(
        'image (confusion oracle)', _ABL + 'rss-image-exact-mirror-16-temp0.25'
        '_fast-scnn_1xb8-4k_camvid-176x240.py', None),
    'rss-image-natural-16': Method(
        'image',
        _ABL + 'rss-image-natural-16_fast-scnn_1xb8-4k_camvid-176x240.py',
        None),
    'rss-image-natural-16-x16': Method(
        'image',
        _ABL + 'rss-image-natural-16-x16_fast-scnn_1xb8-4k_camvid-176x240.py',
        None),
    'rss-image-natural-explore-16': Method(
        'image', _ABL + 'rss-image-natural-explore-16'
        '_fast-scnn_1xb8-4k_camvid-176x240.py', None),
    'rss-image-pull-anneal': Method(
        'image',
        _ABL + 'rss-image-pull-anneal_fast-scnn_1xb8-4k_camvid-176x240.py',
        None),
    'rss-image-reinforce': Method(
        'image',
        _ABL + 'rss-image-reinforce_fast-scnn_1xb8-4k_camvid-176x240.py',
        _ABL + 'rss-image-reinforce_fast-scnn_1xb8-1k_synthetic-128x128.py'),
    'ce-continued': Method(
        'labels (CE)',
        _FT + 'ce-continued_fast-scnn_1xb8-1k_camvid-176x240.py',
        _FT + 'ce-continued_fast-scnn_1xb8-250_synthetic-128x128.py', 'ce'),
    'lovasz-finetune': Method(
        'labels (Lovasz)',
        _FT + 'lovasz-finetune_fast-scnn_1xb8-1k_camvid-176x240.py',
        _FT + 'lovasz-finetune_fast-scnn_1xb8-250_synthetic-128x128.py', 'ce'),
    'rss-finetune-miou': Method(
        'image', _FT + 'rss-finetune-miou_fast-scnn_1xb8-1k_camvid-176x240.py',
        _FT + 'rss-finetune-miou_fast-scnn_1xb8-250_synthetic-128x128.py',
        'ce'),
    'rss-finetune-miou-local': Method(
        'image (one-pixel variants)',
        _FT + 'rss-finetune-miou-local_fast-scnn_1xb8-1k_camvid-176x240.py',
        _FT + 'rss-finetune-miou-local_fast-scnn_1xb8-250_synthetic-128x128'
        '.py', 'ce'),
    'rss-finetune-miou-local-anchor': Method(
        'image (one-pixel variants, KL anchor)',
        _FT + 'rss-finetune-miou-local-anchor_fast-scnn_1xb8-1k_camvid-176x240'
        '.py', _FT + 'rss-finetune-miou-local-anchor_fast-scnn_1xb8-250_'
        'synthetic-128x128.py', 'ce'),
    'rss-finetune-miou-pooled': Method(
        'image (one-pixel variants, batch mIoU)',
        _FT + 'rss-finetune-miou-pooled_fast-scnn_1xb8-1k_camvid-176x240.py',
        _FT + 'rss-finetune-miou-pooled_fast-scnn_1xb8-250_synthetic-128x128'
        '.py', 'ce'),
    'rss-finetune-boundary': Method(
        'image',
        _FT + 'rss-finetune-boundary_fast-scnn_1xb8-1k_camvid-176x240.py',
        _FT + 'rss-finetune-boundary_fast-scnn_1xb8-250_synthetic-128x128.py',
        'ce'),
    'rss-finetune-boundary-local': Method(
        'image (one-pixel variants, mIoU + boundary-band mIoU)',
        _FT + 'rss-finetune-boundary-local_fast-scnn_1xb8-1k_camvid-176x240'
        '.py',
        # the synthetic labels ignore every object border: no band to score
        None, 'ce'),
}
REFERENCE = 'ce'
# The reference of the fine-tuning table: as many extra iterations, with CE.
FINETUNE_REFERENCE = 'ce-continued'
BF_KEY = 'mBFscore'  # boundary F-score, logged by BoundaryFScoreMetric

CAMVID_SRC = osp.join('..', 'shared', 'data', 'camvid')
CAMVID_DATA = osp.join('data', 'camvid')
# --quick: a tiny synthetic set (generator arguments) and a short schedule.
QUICK_DATA = dict(num_train=32, num_val=8, size=64, seed=0)
QUICK_ITERS = 40
QUICK_FINETUNE_ITERS = 16  # fine-tuning runs of --quick
QUICK_BATCH = 4
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
# A run dir without our stamp whose log changed this recently is taken to be
# a training started by hand that is still going: it is left alone.
FOREIGN_ACTIVE_S = 600
STAMP = 'bench_run.json'


def method_config(method: str, quick: bool) -> Optional[str]:
    """The config of ``method`` for CamVid or --quick (None: none)."""
    return METHODS[method].quick if quick else METHODS[method].camvid


def is_finetune(method: str) -> bool:
    return METHODS[method].start_from is not None


def resolve_methods(requested: Optional[List[str]],
                    quick: bool) -> Tuple[List[str], List[str]]:
    """The methods to run (default: all with a config for the benchmark),
    with what they need added, and why each was added.

    A fine-tuning method brings FINETUNE_REFERENCE (the reference of its
    deltas) and the method it starts from; REFERENCE is always there.
    """
    methods = list(requested or [
        m for m in METHODS if method_config(m, quick) is not None])
    added: List[str] = []
    tuned = [m for m in methods if is_finetune(m)]
    if tuned and FINETUNE_REFERENCE not in methods:
        methods.insert(methods.index(tuned[0]), FINETUNE_REFERENCE)
        added.append(f'added {FINETUNE_REFERENCE}: it is the reference of '
                     'the fine-tuning deltas (as many extra iterations, '
                     'with cross-entropy)')
    changed = True
    while changed:  # starting methods (and theirs), before their users
        changed = False
        for method in list(methods):
            start = METHODS[method].start_from
            if start is None or start in methods:
                continue
            users = [m for m in methods if METHODS[m].start_from == start]
            methods.insert(methods.index(users[0]), start)
            added.append(f'added {start}: {", ".join(users)} start(s) from '
                         f'its final checkpoint of the same seed')
            changed = True
    if REFERENCE not in methods:
        methods.insert(0, REFERENCE)
        added.append(f'added {REFERENCE}: it is the reference of every ratio')
    return methods, added


def log(msg: str) -> None:
    print(f'[bench] {msg}', flush=True)


def format_option(value: Any) -> str:
    """A value as mmengine's DictAction parses it back (--cfg-options)."""
    if isinstance(value, tuple):
        return '(' + ','.join(format_option(v) for v in value) + ')'
    if isinstance(value, list):
        return '[' + ','.join(format_option(v) for v in value) + ']'
    return str(value)


def as_cfg_options(options: Dict[str, Any]) -> List[str]:
    return [f'{k}={format_option(v)}' for k, v in options.items()]


def rel(path: str) -> str:
    """``path`` relative to the repository root when inside it."""
    path = osp.abspath(path)
    inside = path.startswith(REPO_ROOT + os.sep)
    return osp.relpath(path, REPO_ROOT) if inside else path


@dataclass
class Run:
    """One training: a method, a seed, its work dir and its overrides."""
    method: str
    seed: int
    config: str
    work_dir: str
    max_iters: int
    options: Dict[str, Any]
    state: str = 'pending'  # finished|failed|running-elsewhere|not run
    note: str = ''
    duration: float = 0.0
    proc: Any = field(default=None, repr=False)
    started: float = 0.0
    # the run whose final checkpoint this one fine-tunes (load_from); it
    # starts once that one is finished
    after: Optional['Run'] = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f'{self.method} seed{self.seed}'

    @property
    def final_checkpoint(self) -> str:
        return osp.join(self.work_dir, f'iter_{self.max_iters}.pth')

    def finished(self) -> bool:
        return osp.isfile(self.final_checkpoint)

    def has_checkpoint(self) -> bool:
        return osp.isfile(osp.join(self.work_dir, 'last_checkpoint')) or any(
            re.fullmatch(r'iter_\d+\.pth', f)
            for f in (os.listdir(self.work_dir)
                      if osp.isdir(self.work_dir) else []))

    def command(self, resume: bool) -> List[str]:
        cmd = [sys.executable, 'tools/train.py', self.config, '--work-dir',
               rel(self.work_dir)]
        options = dict(self.options)
        if resume:
            cmd.append('--resume')
            # mmengine resumes from load_from when it is set (the starting
            # checkpoint: iteration, optimizer and all); without it, from
            # the latest checkpoint of the work dir
            options.pop('load_from', None)
        return cmd + ['--cfg-options', *as_cfg_options(options)]

    def stamp(self) -> Dict[str, Any]:
        stamp = dict(method=self.method, config=self.config, seed=self.seed,
                     max_iters=self.max_iters)
        if 'load_from' in self.options:
            stamp['load_from'] = self.options['load_from']
        return stamp


# ------------------------------------------------------------ preparation
def prepare_data(args: argparse.Namespace, bench_dir: str) -> str:
    """Make sure the dataset exists; return its root (as configs take it)."""
    if args.quick:
        root = osp.join(bench_dir, 'data', 'synthetic')
        meta_path = osp.join(root, 'meta.json')
        if osp.isfile(meta_path):
            with open(meta_path) as f:
                meta = json.load(f)
            if all(meta.get(k) == v for k, v in QUICK_DATA.items()):
                return root
        log(f'generating the quick synthetic set in {rel(root)} '
            f'({QUICK_DATA})')
        return bench_child.call(bench_child.generate_synthetic,
                                (root, QUICK_DATA))
    root = args.camvid_data
    if not all(osp.isdir(osp.join(root, d, s)) for d in ('img_dir', 'ann_dir')
               for s in ('train', 'val')):
        log(f'converting CamVid {args.camvid_src} -> {root}')
        from dataset_converters.camvid import convert_camvid
        convert_camvid(args.camvid_src, root, splits=('train', 'val'))
    return root


def _scaled(value: int, new: int, old: int) -> int:
    return max(1, int(round(value * new / old)))


def schedule_options(cfg, iters: int) -> Dict[str, Any]:
    """Overrides that stretch a config's schedule to ``iters`` iterations.

    max_iters, the val and checkpoint intervals (scaled in proportion), the
    logger interval (at most max_iters / 8, so curves have points), the end
    of every LR scheduler that ends at max_iters, and integer
    iteration-valued fields of custom hooks (``milestones``, ``*_iters``;
    e.g. a PSR schedule given in iterations). Fractions are left alone.
    """
    old = int(cfg.train_cfg.max_iters)
    opts: Dict[str, Any] = {}
    logger_interval = int(cfg.default_hooks.logger.get('interval', 50))
    new_logger = max(1, min(logger_interval, iters // 8))
    if new_logger != logger_interval:
        opts['default_hooks.logger.interval'] = new_logger
    if iters == old:
        return opts
    opts['train_cfg.max_iters'] = iters
    opts['train_cfg.val_interval'] = _scaled(
        int(cfg.train_cfg.get('val_interval', old)), iters, old)
    ckpt = cfg.default_hooks.get('checkpoint')
    if ckpt is not None:
        opts['default_hooks.checkpoint.interval'] = _scaled(
            int(ckpt.get('interval', old)), iters, old)
    scheds = cfg.get('param_scheduler') or []
    if isinstance(scheds, dict):
        scheds = {'': scheds}
    else:
        scheds = {f'.{i}': s for i, s in enumerate(scheds)}
    for suffix, sched in scheds.items():
        if sched.get('end') == old:
            opts[f'param_scheduler{suffix}.end'] = iters
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        for key, value in hook.items():
            if key != 'milestones' and not key.endswith('iters'):
                continue
            if isinstance(value, int) and not isinstance(value, bool):
                opts[f'custom_hooks.{i}.{key}'] = _scaled(value, iters, old)
            elif (isinstance(value, (list, tuple)) and value
                  and all(isinstance(v, int) for v in value)):
                opts[f'custom_hooks.{i}.{key}'] = [
                    _scaled(v, iters, old) for v in value]
    return opts


def data_options(args: argparse.Namespace, data_root: str,
                 cfg) -> Dict[str, Any]:
    """Overrides for the data: its root (when not the config's) and, in
    quick mode, the tiny set's batch, crop size and in-process loading."""
    opts: Dict[str, Any] = {}
    if data_root != cfg.train_dataloader.dataset.get('data_root'):
        for loader in LOADERS:
            opts[f'{loader}.dataset.data_root'] = data_root
    if args.quick:
        opts['train_dataloader.batch_size'] = QUICK_BATCH
        opts['model.data_preprocessor.size'] = (QUICK_DATA['size'], ) * 2
        for loader in LOADERS:
            opts[f'{loader}.num_workers'] = 0
            opts[f'{loader}.persistent_workers'] = False
    return opts


def plan_runs(args: argparse.Namespace, bench_dir: str, data_root: str,
              methods: List[str]) -> Tuple[List[Run], Dict[str, str]]:
    """The runs to do (method x seed) and the methods skipped, with why.

    From-scratch methods train ``args.iters`` iterations (default: their
    config's); fine-tuning methods ``args.finetune_iters`` (default: their
    config's), from the final checkpoint of their starting method's run of
    the same seed, in ``<method>_<N>it/`` when --finetune-iters was given.
    Starting methods must come before their users in ``methods``.
    """
    from mmengine.config import Config
    runs: List[Run] = []
    skipped: Dict[str, str] = {}
    for method in methods:
        config = method_config(method, args.quick)
        start = METHODS[method].start_from
        if config is None:
            skipped[method] = 'no config for this benchmark'
            continue
        if not osp.isfile(config):
            skipped[method] = f'config {config} not found'
            continue
        starts = {r.seed: r for r in runs if r.method == start}
        if start is not None and not starts:
            skipped[method] = (f'it starts from {start}, which is not run ('
                               + skipped.get(start, 'not planned') + ')')
            continue
        cfg = Config.fromfile(config, import_custom_modules=False)
        budget = args.finetune_iters if start else args.iters
        iters = budget or int(cfg.train_cfg.max_iters)
        opts = {**data_options(args, data_root, cfg),
                **schedule_options(cfg, iters)}
        if args.quick:  # two val points and checkpoints: seconds count
            opts['train_cfg.val_interval'] = max(1, iters // 2)
            opts['default_hooks.checkpoint.interval'] = max(1, iters // 2)
        folder = method
        if start and args.finetune_iters_given:
            folder = f'{method}_{iters}it'
        for seed in args.seeds:
            run = Run(method, seed, config,
                      osp.join(bench_dir, folder, f'seed{seed}'), iters,
                      {**opts, 'randomness.seed': seed})
            if start:
                run.after = starts[seed]
                run.options['load_from'] = rel(run.after.final_checkpoint)
            runs.append(run)
    return runs, skipped


# --------------------------------------------------------------- training
def _start_time(pid: int) -> Optional[str]:
    """The kernel's start time of process ``pid`` (None if it is gone);
    with the pid it names one process, whatever pids are reused."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def running_elsewhere(run: Run) -> Optional[str]:
    """Why ``run`` seems to be trained by another process right now."""
    stamp_path = osp.join(run.work_dir, STAMP)
    if osp.isfile(stamp_path):
        with open(stamp_path) as f:
            stamp = json.load(f)
        pid = stamp.get('pid')
        if pid and _start_time(pid) == stamp.get('pid_start'):
            return f'training in process {pid} (another benchmark)'
        return None
    logs = [osp.join(run.work_dir, 'train.log')]
    logs += [osp.join(root, f) for root, _, files in os.walk(run.work_dir)
             for f in files if f == 'scalars.json']
    age = time.time() - report.newest_mtime(logs)
    if age < FOREIGN_ACTIVE_S:
        return (f'started outside the benchmark, log updated {age:.0f} s '
                'ago; re-run when it has finished')
    return None


def check_stamp(run: Run) -> Optional[str]:
    """A mismatch between ``run`` and what its work dir was trained with."""
    stamp_path = osp.join(run.work_dir, STAMP)
    if not osp.isfile(stamp_path):
        return None
    with open(stamp_path) as f:
        found = json.load(f)
    differs = {k: (found.get(k), v) for k, v in run.stamp().items()
               if found.get(k) != v}
    if differs:
        return (f'{rel(run.work_dir)} holds a run with other settings '
                f'(found, wanted): {differs}; pass another --results or '
                '--bench, or delete that folder')
    return None


def start(run: Run, threads: int) -> None:
    resume = run.has_checkpoint()
    cmd = run.command(resume)
    os.makedirs(run.work_dir, exist_ok=True)
    log_path = osp.join(run.work_dir, 'train.log')
    with open(log_path, 'a') as logf:
        logf.write(f'\n$ OMP_NUM_THREADS={threads} {shlex.join(cmd)}\n')
    # tools/train.py with this argv, in a child forked from the preloaded
    # server (see analysis_tools/bench_child.py)
    run.proc = bench_child.start(bench_child.train, (cmd[2:], ), log_path)
    run.started = time.time()
    with open(osp.join(run.work_dir, STAMP), 'w') as f:
        json.dump(dict(run.stamp(), options=as_cfg_options(run.options),
                       command=f'OMP_NUM_THREADS={threads} '
                       + shlex.join(['python', *cmd[1:]]),
                       pid=run.proc.pid, pid_start=_start_time(run.proc.pid)),
                  f, indent=2)
    log(f'start {run.name}{" (resume)" if resume else ""}: '
        f'{shlex.join(cmd[1:])}\n        log: {rel(run.work_dir)}/train.log')


def _eta(durations: List[float], left: int, jobs: int) -> str:
    if not durations:
        return 'ETA after the first run finishes'
    eta = statistics.mean(durations) * left / jobs
    return f'{left} run(s) left, ETA {eta / 60:.1f} min'


def start_state(run: Run) -> Tuple[str, str]:
    """Whether ``run`` can start now, as far as its starting run goes:
    ('ready', ''), ('wait', why), or the state to give it instead of
    training ('failed' / 'not run') and the note that says why."""
    dep = run.after
    if dep is None or (dep.state == 'finished' and dep.finished()):
        return 'ready', ''
    if dep.state == 'failed':
        return 'failed', (f'not started: it fine-tunes {dep.name}, which '
                          f'failed ({dep.note})')
    if dep.state == 'finished':  # and its checkpoint gone since
        return 'failed', (f'not started: it fine-tunes {dep.name}, whose '
                          f'{rel(dep.final_checkpoint)} is missing')
    if dep.state in ('running-elsewhere', 'not run'):
        return 'not run', (f'not started: it fine-tunes {dep.name}, which '
                           f'is not finished ({dep.note or dep.state}); '
                           're-run when it is')
    return 'wait', f'waits for {dep.name} to finish'


def train_all(runs: List[Run], jobs: int, threads: int) -> None:
    """Train the unfinished runs, ``jobs`` at a time; a fine-tuning run
    once the run it starts from has finished."""
    pending = []
    for run in runs:
        problem = check_stamp(run)
        if problem:
            run.state, run.note = 'failed', problem
            log(f'error {run.name}: {problem}')
        elif run.finished():
            run.state = 'finished'
            log(f'skip {run.name}: finished '
                f'({rel(run.final_checkpoint)})')
        else:
            elsewhere = running_elsewhere(run)
            if elsewhere:
                run.state, run.note = 'running-elsewhere', elsewhere
                log(f'skip {run.name}: {elsewhere}')
            else:
                pending.append(run)
    running: List[Run] = []
    durations: List[float] = []
    total = len(pending)
    done = 0
    told_waiting = set()
    try:
        while pending or running:
            for run in list(pending):  # starting run failed or absent
                state, note = start_state(run)
                if state in ('failed', 'not run'):
                    pending.remove(run)
                    done += 1
                    run.state, run.note = state, note
                    log(f'{"FAILED" if state == "failed" else "skip"} '
                        f'{run.name}: {note}')
            while pending and len(running) < jobs:
                run = next((r for r in pending
                            if start_state(r)[0] == 'ready'), None)
                if run is None:
                    for r in pending:
                        if r.name not in told_waiting:
                            told_waiting.add(r.name)
                            log(f'{r.name} {start_state(r)[1]}')
                    break
                pending.remove(run)
                log(f'[{done + len(running) + 1}/{total}] '
                    + _eta(durations, len(pending) + len(running) + 1, jobs))
                start(run, threads)
                running.append(run)
            if not running:
                if pending:  # cannot happen: a starting run always runs
                    for run in pending:  # before its users; never hang
                        run.state = 'not run'
                        run.note = 'not started: ' + start_state(run)[1]
                    pending.clear()
                break
            time.sleep(0.5)
            for run in [r for r in running if r.proc.exitcode is not None]:
                running.remove(run)
                done += 1
                run.duration = time.time() - run.started
                if run.proc.exitcode == 0 and run.finished():
                    run.state = 'finished'
                    durations.append(run.duration)
                    _, val = report.load_scalars(run.work_dir)
                    last = val[max(val)] if val else {}
                    scores = f'val mIoU {last.get("mIoU", float("nan")):.2f}'
                    if BF_KEY in last:
                        scores += f', {BF_KEY} {last[BF_KEY]:.2f}'
                    log(f'done {run.name} in {run.duration:.0f} s: {scores}; '
                        + _eta(durations, len(pending) + len(running), jobs))
                else:
                    run.state = 'failed'
                    run.note = f'training failed (exit {run.proc.exitcode})'
                    log_path = osp.join(run.work_dir, 'train.log')
                    tail = ''
                    if osp.isfile(log_path):
                        with open(log_path) as f:
                            tail = ''.join(f.readlines()[-25:])
                    log(f'FAILED {run.name} (exit {run.proc.exitcode}); '
                        f'last lines of {rel(run.work_dir)}/train.log:\n'
                        f'{tail}')
    except KeyboardInterrupt:
        for run in running:
            run.proc.terminate()
        for run in running:
            run.proc.join()
        log('interrupted; run the same command again to resume')
        raise


# ----------------------------------------------------------------- timing
def machine_info(threads: int) -> Dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return dict(cpu=cpu, cores=os.cpu_count(), threads=threads)


def measure_timing(args: argparse.Namespace, runs: List[Run],
                   bench_dir: str, data_root: str) -> Optional[dict]:
    """s/iter and peak memory of each method's config, side by side.

    Cached in ``timing.json`` with what it was measured with; measured
    again when that changes (all methods together, so that the ratios come
    from one alternating session). With ``--no-timing`` or
    ``--skip-train`` only the cache is read.
    """
    cache_path = osp.join(bench_dir, 'timing.json')
    configs: Dict[str, str] = {}
    for run in runs:
        if run.state == 'finished':
            configs.setdefault(run.method, run.config)
    base = runs[0] if runs else None
    common = {k: v for k, v in (base.options.items() if base else [])
              if k.startswith(LOADERS) or k.startswith('model.')}
    if base is not None:
        for loader in LOADERS:  # timing runs elsewhere: absolute data root
            common[f'{loader}.dataset.data_root'] = osp.abspath(data_root)
    key = dict(configs=configs, options=as_cfg_options(common),
               iters=args.timing_iters, warmup=args.timing_warmup,
               repeats=args.timing_repeats, threads=args.threads)
    cached = None
    if osp.isfile(cache_path):
        with open(cache_path) as f:
            cached = json.load(f)
        if cached.get('key') == key:
            log(f'skip timing: measured already ({rel(cache_path)})')
            return cached
    if args.no_timing or args.skip_train or REFERENCE not in configs:
        if not (args.no_timing or args.skip_train):
            log(f'no timing: {REFERENCE} has no finished run')
        elif cached:
            log(f'timing from {rel(cache_path)} (measured with other '
                'settings or methods; not re-measured)')
        return cached
    work = osp.join(bench_dir, 'timing')
    os.makedirs(work, exist_ok=True)
    log_path = osp.join(work, 'timing.log')
    log(f'timing {", ".join(configs)}: {args.timing_repeats} alternating '
        f'repeat(s) of {args.timing_warmup} warm-up + {args.timing_iters} '
        f'timed iterations, {args.threads} thread(s); log: {rel(log_path)}')
    start_t = time.time()
    per_method: Dict[str, List[dict]] = {m: [] for m in configs}
    try:
        for rep in range(args.timing_repeats):
            for method, config in configs.items():
                # train_speed.measure_one in a fresh child per measurement
                per_method[method].append(bench_child.call(
                    bench_child.time_config,
                    (osp.join(REPO_ROOT, config), args.timing_iters,
                     args.timing_warmup, key['options']), log_path, work))
                r = per_method[method][-1]
                log(f'  [{rep + 1}/{args.timing_repeats}] {method}: '
                    f'{r["s_per_iter"]:.4f} s/iter, {r["peak_mib"]:.1f} MiB')
    except RuntimeError as e:
        log(f'timing failed: {e}')
        return cached
    first = next(iter(per_method.values()))[0]
    result = dict(
        key=key,
        command=('python tools/analysis_tools/train_speed.py '
                 + ' '.join(configs.values())
                 + f' --iters {args.timing_iters} --warmup '
                 f'{args.timing_warmup} --repeats {args.timing_repeats} '
                 '--cfg-options ' + shlex.join(key['options'])),
        machine=dict(machine_info(args.threads), cuda=first['cuda'],
                     torch_threads=first['threads']),
        seconds=round(time.time() - start_t, 1),
        methods={m: {k: statistics.median(r[k] for r in rs)
                     for k in ('s_per_iter', 'peak_mib')}
                 for m, rs in per_method.items()},
        runs=per_method)
    with open(cache_path, 'w') as f:
        json.dump(result, f, indent=2)
    log(f'timing done in {result["seconds"]:.0f} s')
    return result


# ---------------------------------------------------------------- outputs
def final_value(run: Run, key: str = 'mIoU') -> Optional[float]:
    """``key`` of the last val of a finished run (None: not finished, not
    logged, or not finite)."""
    _, val = report.load_scalars(run.work_dir)
    if not val or not run.finished():
        return None
    value = val[max(val)].get(key)
    return value if value is not None and math.isfinite(value) else None


def seed_finals(runs: List[Run], key: str = 'mIoU') -> Dict[int, float]:
    """Final ``key`` per seed of the runs that have one."""
    values = {r.seed: final_value(r, key) for r in runs}
    return {s: v for s, v in values.items() if v is not None}


def method_note(method: str, runs: List[Run],
                skipped: Dict[str, str]) -> str:
    """Why a method or some of its runs are missing from a table row."""
    notes = [skipped[method]] if method in skipped else []
    notes += sorted({f'{r.name}: {r.note}' for r in runs if r.note})
    return '; '.join(notes)


def table_rows(methods: List[str], runs: List[Run], skipped: Dict[str, str],
               timing: Optional[dict], seeds: List[int]) -> List[dict]:
    rows = []
    for method in methods:
        level = METHODS[method].level
        mine = [r for r in runs if r.method == method]
        per_seed = seed_finals(mine)
        row: Dict[str, Any] = dict(
            method=method, reward_level=level,
            config=mine[0].config if mine else None,
            iters=mine[0].max_iters if mine else None,
            seeds=f'{len(per_seed)}/{len(seeds)}', per_seed=per_seed)
        if per_seed:
            row['miou'], row['miou_min'], row['miou_max'] = \
                report.median_spread(list(per_seed.values()))
        row['note'] = method_note(method, mine, skipped)
        timed = (timing or {}).get('methods', {}).get(method)
        if timed:
            row['s_per_iter'] = timed['s_per_iter']
            row['peak_mib'] = timed['peak_mib']
        rows.append(row)
    ref = next((r for r in rows if r['method'] == REFERENCE), {})
    for row in rows:
        for key in ('miou', 's_per_iter', 'peak_mib'):
            row[f'{key}_x_ce'] = report.ratio(row.get(key), ref.get(key))
    return rows


def _paired(values: Dict[int, float],
            ref: Dict[int, float]) -> Dict[int, float]:
    """Per seed: value - the reference's value of the same seed."""
    return {s: v - ref[s] for s, v in values.items() if s in ref}


def finetune_rows(methods: List[str], runs: List[Run],
                  skipped: Dict[str, str], timing: Optional[dict],
                  seeds: List[int]) -> List[dict]:
    """One row per fine-tuning method: final val mIoU and mBFscore (median,
    min, max over finished seeds), their deltas against
    FINETUNE_REFERENCE (median over seeds of the same-seed difference:
    both started from the same checkpoint), ratios against its medians,
    s/iter and memory; per-seed values in ``per_seed*``."""
    ref_runs = [r for r in runs if r.method == FINETUNE_REFERENCE]
    ref_miou, ref_bf = seed_finals(ref_runs), seed_finals(ref_runs, BF_KEY)
    rows = []
    for method in methods:
        mine = [r for r in runs if r.method == method]
        miou, bf = seed_finals(mine), seed_finals(mine, BF_KEY)
        start = METHODS[method].start_from
        starts = [r.after for r in mine if r.after is not None]
        start_miou = seed_finals(starts)
        row: Dict[str, Any] = dict(
            method=method, reward_level=METHODS[method].level,
            reference=FINETUNE_REFERENCE,
            starts_from=(f'{start} ({starts[0].max_iters} it)' if starts
                         else start),
            config=mine[0].config if mine else None,
            iters=mine[0].max_iters if mine else None,
            seeds=f'{len(miou)}/{len(seeds)}', per_seed=miou,
            per_seed_bf=bf, per_seed_miou_delta=_paired(miou, ref_miou),
            per_seed_bf_delta=_paired(bf, ref_bf),
            per_seed_start_miou=start_miou)
        for key, values in (('miou', miou), ('bf', bf)):
            if values:
                row[key], row[f'{key}_min'], row[f'{key}_max'] = \
                    report.median_spread(list(values.values()))
        for key in ('miou_delta', 'bf_delta', 'start_miou'):
            values = row[f'per_seed_{key}']
            if values:
                row[key] = statistics.median(values.values())
        row['note'] = method_note(method, mine, skipped)
        timed = (timing or {}).get('methods', {})
        if timed.get(method):
            row['s_per_iter'] = timed[method]['s_per_iter']
            row['peak_mib'] = timed[method]['peak_mib']
            row['s_per_iter_x_ce'] = report.ratio(
                row['s_per_iter'], timed.get(REFERENCE, {}).get('s_per_iter'))
        rows.append(row)
    ref = next((r for r in rows if r['method'] == FINETUNE_REFERENCE), {})
    for row in rows:
        for key in ('miou', 'bf', 's_per_iter', 'peak_mib'):
            row[f'{key}_x_ref'] = report.ratio(row.get(key), ref.get(key))
    return rows


def finetune_header(args: argparse.Namespace, runs: List[Run],
                    methods: List[str]) -> List[str]:
    """The lines above the fine-tuning table."""
    tuned = [r for r in runs if r.method in methods]
    starts = sorted({(r.after.method, r.after.max_iters)
                     for r in tuned if r.after is not None})
    start = ', '.join(f'(iteration {i}) of the `{m}` run'
                      for m, i in starts) or 'of the starting run'
    iters = sorted({r.max_iters for r in tuned})
    return [
        '## Reward fine-tuning',
        '',
        f'Every fine-tuning run starts from the final checkpoint {start} '
        'of the same seed and trains '
        f'{", ".join(map(str, iters)) or "-"} more iterations on the same '
        'data and batch'
        + (' (--finetune-iters override)' if args.finetune_iters_given
           else '')
        + f'. Reference: `{FINETUNE_REFERENCE}` (the same extra iterations '
        'with cross-entropy). val mIoU and mBFscore (boundary F-score, %, '
        'BoundaryFScoreMetric) at the last iteration, median over finished '
        f'seeds; delta = median over seeds of (method - '
        f'{FINETUNE_REFERENCE}) on the same seed, i.e. from the same '
        f'starting checkpoint; "x {FINETUNE_REFERENCE}" = ratio of the '
        'medians. Per-seed values in table.json.',
    ]


def _curves(runs: List[Run], methods: List[str], key_of,
            start_key: Optional[str] = None) -> Dict[str, list]:
    """method -> one ``{step: value}`` per run (finite values only);
    ``key_of(train, val)`` gives (scalars, key). With ``start_key``, a
    fine-tuning run's curve begins at step 0 with its starting run's final
    value of that key."""
    curves: Dict[str, list] = {}
    for method in methods:
        curves[method] = []
        for run in (r for r in runs if r.method == method):
            train, val = report.load_scalars(run.work_dir)
            curve = {s: v for s, v in report.series(*key_of(train, val))
                     .items() if math.isfinite(v)}
            if curve and start_key and run.after is not None:
                begin = final_value(run.after, start_key)
                if begin is not None:
                    curve = {0: begin, **curve}
            curves[method].append(curve)
    return curves


def write_outputs(args: argparse.Namespace, bench: str, bench_dir: str,
                  methods: List[str], runs: List[Run], skipped: Dict[str, str],
                  timing: Optional[dict]) -> Dict[str, str]:
    """The tables, the plots, the picture grid and report.md."""
    command = reproduce_command(args, bench, methods)
    figure_cmd = command + ' --skip-train'
    scratch = [m for m in methods if not is_finetune(m)]
    tuned = [m for m in methods if is_finetune(m)]
    rows = table_rows(scratch, runs, skipped, timing, args.seeds)
    dataset = ('synthetic shapes (quick: {num_train} train / {num_val} val, '
               '{size}x{size})'.format(**QUICK_DATA) if args.quick else
               'CamVid (SegNet split), val (101 images, scored at 360x480)')
    iters = sorted({r.max_iters for r in runs if r.method in scratch})
    header = [
        f'# Benchmark `{bench}`: {dataset}',
        '',
        f'Fast-SCNN from scratch, same data, schedule and seed for every '
        f'method; iterations: {", ".join(map(str, iters)) or "-"}'
        + (' (--iters override)' if args.iters_given else '')
        + f'; seeds: {", ".join(map(str, args.seeds))}; val mIoU = median '
        'over finished seeds (min and max beside it).',
    ]
    if timing:
        m = timing['machine']
        k = timing['key']
        device = {True: 'CUDA', False: 'CPU only', None: 'device unknown'}
        header.append(
            f'Timing on {m["cpu"]} ({m["cores"]} cores), {m["threads"]} '
            f'torch thread(s), {device[m.get("cuda")]}: median s/iter over '
            f'{k["iters"]} iterations after {k["warmup"]} warm-up, median of '
            f'{k["repeats"]} alternating repeat(s); peak memory = '
            + ('CUDA max allocated' if m.get('cuda') else
               'growth of peak RSS once model and loader are built') + '.')
    else:
        m = machine_info(args.threads)
        header.append(f'Machine: {m["cpu"]} ({m["cores"]} cores), '
                      f'{args.threads} thread(s); no timing measured.')
    header.append(f'Command: `{command}`')
    meta = dict(bench=bench, command=command, dataset=dataset,
                seeds=args.seeds, iters=iters, timing=timing,
                machine=machine_info(args.threads))
    finetune = None
    if tuned:
        finetune = (finetune_rows(tuned, runs, skipped, timing, args.seeds),
                    finetune_header(args, runs, tuned))
        meta['finetune_iters'] = sorted(
            {r.max_iters for r in runs if r.method in tuned})
    paths = report.write_table(rows, header, meta, bench_dir, finetune)
    with open(paths['md']) as f:
        print(f.read(), flush=True)

    # curves
    note = f'reproduce: {figure_cmd}'
    seeds = f'median over seeds {",".join(map(str, args.seeds))}'
    paths['miou_png'] = report.plot_curves(
        _curves(runs, scratch, lambda t, v: (v, 'mIoU')),
        osp.join(bench_dir, 'miou_vs_iter.png'),
        f'{bench}: val mIoU ({seeds})', 'val mIoU', note)
    paths['reward_png'] = report.plot_curves(
        _curves(runs, scratch, lambda t, v: (t, report.reward_key(t))),
        osp.join(bench_dir, 'reward_vs_iter.png'),
        f'{bench}: mean training reward ({seeds})', 'mean reward', note)
    psr = {m: c for m, c in _curves(
        runs, scratch, lambda t, v: (t, report.psr_key(t))).items()
        if any(c)}
    paths['psr_png'] = report.plot_curves(
        psr or {'(none)': []}, osp.join(bench_dir, 'psr_scale_vs_iter.png'),
        f'{bench}: PSR scale schedule', 'psr_scale', note, steps=True)
    keys = ['miou_png', 'reward_png', 'psr_png']
    if tuned:
        xlabel = 'fine-tuning iteration'
        paths['ft_miou_png'] = report.plot_curves(
            _curves(runs, tuned, lambda t, v: (v, 'mIoU'), 'mIoU'),
            osp.join(bench_dir, 'finetune_miou_vs_iter.png'),
            f'{bench}: fine-tuning, val mIoU ({seeds})', 'val mIoU', note,
            xlabel=xlabel + ' (0: the starting checkpoint)')
        bf = _curves(runs, tuned, lambda t, v: (v, BF_KEY))
        if not any(any(c) for c in bf.values()):
            log(f'the {BF_KEY} plot is empty: no fine-tuning run logged a '
                f'finite {BF_KEY} (NaN: no boundary in the val set)')
        paths['ft_bf_png'] = report.plot_curves(
            bf, osp.join(bench_dir, 'finetune_bfscore_vs_iter.png'),
            f'{bench}: fine-tuning, val {BF_KEY} ({seeds})',
            f'val {BF_KEY} (boundary F-score, %)', note, xlabel=xlabel)
        keys += ['ft_miou_png', 'ft_bf_png']
        reward = _curves(runs, tuned,
                         lambda t, v: (t, report.reward_key(t)))
        if any(any(c) for c in reward.values()):
            paths['ft_reward_png'] = report.plot_curves(
                reward, osp.join(bench_dir, 'finetune_reward_vs_iter.png'),
                f'{bench}: fine-tuning, mean training reward ({seeds})',
                'mean reward', note, xlabel=xlabel)
            keys.append('ft_reward_png')
    for key in keys:
        log(f'wrote {rel(paths[key])} (reproduce: {figure_cmd})')

    grid = picture_grid(args, bench_dir, methods, runs, note)
    if grid:
        paths['pictures_png'] = grid
    write_report_md(bench_dir, paths, runs, figure_cmd)
    return paths


def picture_grid(args: argparse.Namespace, bench_dir: str,
                 methods: List[str], runs: List[Run],
                 note: str) -> Optional[str]:
    """Predictions of each method (its lowest finished seed) on a few val
    images; skipped when the checkpoints have not changed since."""
    chosen = []
    for method in methods:
        done = sorted((r for r in runs
                       if r.method == method and r.finished()),
                      key=lambda r: r.seed)
        if done:
            chosen.append(done[0])
    out_png = osp.join(bench_dir, 'pictures.png')
    if not chosen:
        log('no picture grid: no finished run')
        return None
    meta_path = osp.join(bench_dir, 'pictures.json')
    key = dict(num_images=args.num_images, runs=[
        [r.method, rel(r.final_checkpoint),
         os.stat(r.final_checkpoint).st_mtime] for r in chosen])
    if osp.isfile(out_png) and osp.isfile(meta_path):
        with open(meta_path) as f:
            if json.load(f) == key:
                log(f'skip pictures: {rel(out_png)} is up to date')
                return out_png
    log(f'predicting {args.num_images} val images with '
        + ', '.join(f'{r.name}' for r in chosen))
    try:
        bench_child.call(bench_child.pictures, (
            [(r.method, r.config, r.options, r.final_checkpoint)
             for r in chosen], args.num_images, out_png, note),
            osp.join(bench_dir, 'pictures.log'))
    except RuntimeError as e:
        log(f'no picture grid: {e}')
        return None
    with open(meta_path, 'w') as f:
        json.dump(key, f)
    log(f'wrote {rel(out_png)} (reproduce: {note[len("reproduce: "):]})')
    return out_png


def write_report_md(bench_dir: str, paths: Dict[str, str],
                    runs: List[Run], figure_cmd: str) -> None:
    with open(paths['md']) as f:
        lines = [f.read()]
    lines.append(f'Tables: `table.md`, `table.csv`'
                 + (', `table_finetune.csv`' if 'finetune_csv' in paths
                    else '')
                 + ', `table.json`. Every figure below is rebuilt from the '
                 f'runs by `{figure_cmd}`.')
    for key, title in (
            ('miou_png', 'Val mIoU vs iteration'),
            ('reward_png', 'Mean training reward vs iteration'),
            ('psr_png', 'PSR scale schedule'),
            ('ft_miou_png', 'Fine-tuning: val mIoU vs iteration'),
            ('ft_bf_png', f'Fine-tuning: val {BF_KEY} vs iteration'),
            ('ft_reward_png', 'Fine-tuning: mean training reward'),
            ('pictures_png', 'Predictions on val images')):
        if key in paths:
            lines += ['', f'## {title}', '',
                      f'![{title}]({osp.basename(paths[key])})', '',
                      f'Reproduce: `{figure_cmd}`']
    lines += ['', '## Runs', '']
    for run in runs:
        stamp_path = osp.join(run.work_dir, STAMP)
        cmd = ''
        if osp.isfile(stamp_path):
            with open(stamp_path) as f:
                cmd = json.load(f).get('command', '')
        lines.append(f'- {run.name}: `{rel(run.work_dir)}` ({run.state}'
                     + (f', {run.note}' if run.note else '') + ')'
                     + (f'  \n  `{cmd}`' if cmd else ''))
    with open(osp.join(bench_dir, 'report.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def reproduce_command(args: argparse.Namespace, bench: str,
                      methods: List[str]) -> str:
    cmd = ['python', 'tools/benchmark.py']
    if args.quick:
        cmd.append('--quick')
    cmd += ['--results', rel(args.results), '--bench', bench, '--methods',
            *methods, '--seeds', *map(str, args.seeds), '--threads',
            str(args.threads)]
    if args.iters_given:
        cmd += ['--iters', str(args.iters)]
    if args.finetune_iters_given and any(map(is_finetune, methods)):
        cmd += ['--finetune-iters', str(args.finetune_iters)]
    if args.num_images != parse_args([]).num_images:
        cmd += ['--num-images', str(args.num_images)]
    return shlex.join(cmd)


# ------------------------------------------------------------------- main
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='methods: ' + ', '.join(
            m for m in METHODS if not is_finetune(m))
        + '; fine-tuning (from the final checkpoint of the named method\'s '
        'run of the same seed): ' + ', '.join(
            f'{m} (from {METHODS[m].start_from})' for m in METHODS
            if is_finetune(m)))
    parser.add_argument('--methods', nargs='+', choices=list(METHODS),
                        help='methods to run (default: all with a config '
                        'for the chosen benchmark)')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0])
    parser.add_argument('--jobs', type=int,
                        help='trainings in parallel (default 1; 2 with '
                        '--quick, whose runs are mostly process start-up)')
    parser.add_argument('--threads', type=int, default=1,
                        help='OMP threads per training and for timing')
    parser.add_argument('--iters', type=int,
                        help='override max_iters of the from-scratch methods '
                        '(the starting ce runs of fine-tuning included; '
                        'val/checkpoint intervals and LR decay scale with '
                        'it); default: the config\'s, '
                        f'{QUICK_ITERS} with --quick')
    parser.add_argument('--finetune-iters', type=int,
                        help='override max_iters of the fine-tuning methods '
                        '(scaled the same way; their runs go to '
                        '<method>_<N>it/); default: the fine-tuning '
                        f'config\'s, {QUICK_FINETUNE_ITERS} with --quick')
    parser.add_argument('--results', default='results',
                        help='results root (default results/)')
    parser.add_argument('--bench', help='benchmark folder name (default '
                        'bench_camvid / bench_quick, plus _<N>it with '
                        '--iters)')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run on a tiny synthetic set')
    parser.add_argument('--skip-train', action='store_true',
                        help='only rebuild table, plots and pictures')
    parser.add_argument('--no-timing', action='store_true',
                        help='do not measure s/iter and memory (a cached '
                        'measurement is still reported)')
    parser.add_argument('--timing-iters', type=int)
    parser.add_argument('--timing-warmup', type=int)
    parser.add_argument('--timing-repeats', type=int)
    parser.add_argument('--num-images', type=int, default=4,
                        help='val images in the picture grid')
    parser.add_argument('--camvid-src', default=CAMVID_SRC,
                        help='SegNet CamVid folder, converted into '
                        '--camvid-data when that is missing')
    parser.add_argument('--camvid-data', default=CAMVID_DATA)
    args = parser.parse_args(argv)
    for name in ('jobs', 'threads', 'iters', 'finetune_iters',
                 'timing_iters', 'timing_warmup', 'timing_repeats',
                 'num_images'):
        value = getattr(args, name)
        if value is not None and value < (0 if name == 'timing_warmup'
                                          else 1):
            parser.error(f'--{name.replace("_", "-")} must be positive, got '
                         f'{value}')
    quick = args.quick
    args.iters_given = args.iters is not None
    args.finetune_iters_given = args.finetune_iters is not None
    if quick:
        args.iters = args.iters or QUICK_ITERS
        args.finetune_iters = args.finetune_iters or QUICK_FINETUNE_ITERS
    args.jobs = args.jobs or (2 if quick else 1)
    args.timing_iters = args.timing_iters or (5 if quick else 30)
    if args.timing_warmup is None:
        args.timing_warmup = 3 if quick else 10
    args.timing_repeats = args.timing_repeats or (1 if quick else 3)
    return args


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f'signal {signum}')


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    args.results = osp.abspath(args.results)
    # `kill` / `timeout` stop the trainings too, as Ctrl-C does
    signal.signal(signal.SIGTERM, _interrupt)
    os.chdir(REPO_ROOT)  # configs, tools/train.py and data/ are relative
    # every child (trainings, timing, pictures) is forked from one server
    # started after this: its torch reads the thread count at import
    os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = str(
        args.threads)
    bench = args.bench or (
        ('bench_quick' if args.quick else 'bench_camvid')
        + (f'_{args.iters}it' if args.iters_given else ''))
    methods, added = resolve_methods(args.methods, args.quick)
    for why in added:
        log(why)
    bench_dir = osp.join(args.results, bench)
    os.makedirs(bench_dir, exist_ok=True)
    t0 = time.time()
    log(f'{bench}: methods {", ".join(methods)}; seeds '
        f'{", ".join(map(str, args.seeds))}; results in {rel(bench_dir)}')

    data_root = prepare_data(args, bench_dir)
    if args.quick:
        data_root = rel(data_root)
    runs, skipped = plan_runs(args, bench_dir, data_root, methods)
    for method, why in skipped.items():
        log(f'skip {method}: {why}')
    if args.skip_train:
        for run in runs:
            run.state = 'finished' if run.finished() else 'not run'
    else:
        train_all(runs, args.jobs, args.threads)
    timing = measure_timing(args, runs, bench_dir, data_root)
    write_outputs(args, bench, bench_dir, methods, runs, skipped, timing)
    failed = [r for r in runs if r.state == 'failed']
    log(f'finished in {time.time() - t0:.0f} s; outputs in {rel(bench_dir)}'
        f' (report.md, table.md/csv/json, *.png)')
    log(f'reproduce: {reproduce_command(args, bench, methods)}')
    if failed:
        log('failed runs: ' + ', '.join(r.name for r in failed))
        return 1
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
