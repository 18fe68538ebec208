"""Work that tools/benchmark.py runs in child processes, without re-imports.

Importing torch, mmseg and rss_mmseg costs about 10 s of CPU per process,
more than a whole quick-mode run. The benchmark therefore starts one
``forkserver`` that imports them once; every training, timing measurement
and the picture grid runs in a fresh process forked from it (its own memory,
its own peak RSS, its own exit code), with stdout/stderr going to a log
file. A training child runs ``tools/train.py`` itself with the same argv, so
the command the benchmark prints is the one that reproduces the run.
"""
import multiprocessing
import os
import os.path as osp
import runpy
import sys
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

TOOLS_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))
REPO_ROOT = osp.dirname(TOOLS_DIR)
PRELOAD = ['torch', 'mmengine.runner', 'mmseg.models', 'mmseg.datasets',
           'mmseg.apis', 'mmseg.visualization', 'rss_mmseg',
           'matplotlib.pyplot', 'yapf.yapflib.yapf_api',
           'analysis_tools.bench_report', 'analysis_tools.train_speed']
_CTX = None


def context():
    """The forkserver context, started on first use (preloading PRELOAD)."""
    global _CTX
    if _CTX is None:
        if TOOLS_DIR not in sys.path:
            sys.path.insert(0, TOOLS_DIR)
        # mmengine asks torch.cuda.is_available() when imported; by default
        # that initializes the CUDA driver in the server, and children
        # forked from it then fail their first CUDA call. NVML answers the
        # same question without initializing CUDA.
        os.environ.setdefault('PYTORCH_NVML_BASED_CUDA_CHECK', '1')
        _CTX = multiprocessing.get_context('forkserver')
        _CTX.set_forkserver_preload(PRELOAD)
    return _CTX


def _entry(conn, log_path: Optional[str], cwd: str, fn: Callable,
           args: Sequence[Any]) -> None:
    if log_path:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        sys.stdout.reconfigure(line_buffering=True)
        sys.stderr.reconfigure(line_buffering=True)
    os.chdir(cwd)
    # Returning (or SystemExit) lets multiprocessing's bootstrap flush the
    # streams and stop this child's own daemonic children (data loaders).
    try:
        result = fn(*args)
    except SystemExit as e:
        if conn is not None:
            conn.send(('ok', None) if e.code in (0, None) else
                      ('error', f'exit {e.code}'))
        raise
    except BaseException as e:  # noqa: B902  report anything, then fail
        traceback.print_exc()
        if conn is not None:
            conn.send(('error', f'{type(e).__name__}: {e}'))
        sys.exit(1)
    if conn is not None:
        conn.send(('ok', result))


def start(fn: Callable, args: Sequence[Any], log_path: Optional[str] = None,
          cwd: str = REPO_ROOT):
    """Start ``fn(*args)`` in a forked child; return the Process."""
    proc = context().Process(target=_entry,
                             args=(None, log_path, cwd, fn, tuple(args)))
    proc.start()
    return proc


def call(fn: Callable, args: Sequence[Any], log_path: Optional[str] = None,
         cwd: str = REPO_ROOT) -> Any:
    """Run ``fn(*args)`` in a forked child and return its result.

    Raises:
        RuntimeError: when the child fails; the message names the log.
    """
    ctx = context()
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_entry,
                       args=(sender, log_path, cwd, fn, tuple(args)))
    proc.start()
    sender.close()
    try:
        status, value = receiver.recv()
    except EOFError:
        status, value = 'error', 'the child died without a result'
    except KeyboardInterrupt:
        proc.terminate()
        proc.join()
        raise
    proc.join()
    if status != 'ok':
        where = f'; see {log_path}' if log_path else ''
        raise RuntimeError(f'{getattr(fn, "__name__", fn)} failed: '
                           f'{value}{where}')
    return value


# ------------------------------------------------------- child functions
def train(argv: List[str]) -> None:
    """``python tools/train.py *argv`` in this process."""
    sys.argv = [osp.join('tools', 'train.py'), *argv]
    runpy.run_path(osp.join(REPO_ROOT, 'tools', 'train.py'),
                   run_name='__main__')


def generate_synthetic(root: str, settings: Dict[str, int]) -> str:
    from rss_mmseg.datasets.synthetic import ensure_synthetic_dataset
    return ensure_synthetic_dataset(root, **settings)


def _reset_peak_rss() -> None:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0), so
    the forkserver's history does not count as this child's peak."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass


def time_config(config: str, iters: int, warmup: int,
                options: List[str]) -> Dict[str, Any]:
    """train_speed.measure_one on one config: median s/iter after
    ``warmup`` iterations and the peak memory added by training."""
    import torch

    from analysis_tools.train_speed import measure_one
    _reset_peak_rss()
    result = measure_one(config, iters, warmup, options)
    result['cuda'] = torch.cuda.is_available()
    return result


def pictures(models: List[Tuple[str, str, Dict[str, Any], str]],
             num_images: int, out_png: str, note: str) -> str:
    """Predict a few val images with each (method, config, cfg options,
    checkpoint) and draw the grid."""
    from mmengine.config import Config

    from analysis_tools import bench_report
    built = []
    for method, config, options, checkpoint in models:
        cfg = Config.fromfile(config)
        cfg.merge_from_dict(options)
        built.append((method, cfg, checkpoint))
    pred = bench_report.predict_val_images(built, num_images)
    return bench_report.picture_grid(pred, out_png, note)
