"""Crash-safe checkpoints: atomic writes, and ``--resume`` past a broken file.

mmengine 0.10.7 writes a checkpoint by opening its final path and writing
the bytes (``LocalBackend.put``), and the ``last_checkpoint`` pointer the
same way (``CheckpointHook`` opens it with ``open(path, 'w')``). A run
killed while saving leaves a truncated ``iter_N.pth`` that the pointer
already (or still) names, and ``tools/train.py --resume`` then dies in
``torch.load`` with an error that names no file (``RuntimeError:
PytorchStreamReader failed reading zip archive``, ``EOFError``,
``OSError: [Errno 22] Invalid argument``).

:func:`install_crash_safe_checkpoints` (applied by ``import rss_mmseg``)
changes three things and nothing else:

- **Atomic writes.** :class:`AtomicLocalBackend` replaces mmengine's
  ``LocalBackend`` as the ``'local'`` file backend (the one for paths
  without a ``scheme://`` prefix). Its ``put``/``put_text`` write to a
  hidden temporary file in the same directory
  (``.<name>.<pid>.<8 hex>.tmp``), flush and ``fsync`` it, and
  ``os.replace`` it over the final path: the path holds either the old or
  the new complete file, never a part. ``save_checkpoint`` (and every
  other ``mmengine.fileio`` put to a local path) goes through it.
  ``CheckpointHook`` writes ``last_checkpoint`` with the builtin ``open``;
  inside ``mmengine.hooks.checkpoint_hook`` only, ``open`` is bound to
  :func:`_checkpoint_hook_open`, which writes files named
  ``last_checkpoint`` the same atomic way and opens everything else as
  the builtin does.
- **Named load errors.** The loader of local checkpoint files
  (``CheckpointLoader``'s ``''`` scheme, used by ``--resume``,
  ``load_from`` and ``tools/test.py``) raises :class:`CheckpointLoadError`,
  naming the file, when ``torch.load`` fails on an existing file (the
  original error is its ``__cause__``). Missing files, out-of-memory and
  ``weights_only`` refusals of globals (a complete file holding objects
  outside the allow-list of :mod:`rss_mmseg.compat.checkpoint`) raise as
  before.
- **Resume falls back.** ``Runner.load_or_resume`` with ``resume=True``
  and no ``load_from`` (``tools/train.py --resume``) tries the checkpoint
  ``last_checkpoint`` names; when that file is missing or cannot be
  loaded, it warns naming it and resumes from the newest older
  ``iter_N.pth``/``epoch_N.pth`` of the same directory that loads. When
  none loads it stops with :class:`ResumeError`, listing every file with
  its error and the fix. It also removes temporary files left by killed
  writers (those whose process is gone). Without a ``last_checkpoint``,
  or with a remote one, mmengine's own code runs unchanged.

Writes through the deprecated ``file_client_args`` (``FileClient``) and
``FlexibleRunner`` are not covered.
"""
import builtins
import functools
import os
import os.path as osp
import pickle
import re
import secrets
import stat
from typing import Any, List, Optional, Tuple

import mmengine
import mmengine.hooks.checkpoint_hook as _checkpoint_hook_module
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.fileio import io as _fileio_io
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader

_TEMP_RE = re.compile(r'^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$')
_CHECKPOINT_RE = re.compile(r'^(?P<kind>iter|epoch)_(?P<step>\d+)\.pth$')
POINTER = 'last_checkpoint'


# -- atomic writes ----------------------------------------------------------
def _temp_path(path: str) -> str:
    directory, name = osp.split(path)
    return osp.join(directory,
                    f'.{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp')


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_dir(directory: str) -> None:
    """Make a rename in ``directory`` durable (best effort)."""
    try:
        fd = os.open(directory or '.', os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicFile:
    """A file opened for writing whose content replaces ``path`` at once.

    Data goes to a temporary file next to ``path``; :meth:`close` (or the
    end of a ``with`` block) flushes and ``fsync``\\ s it and renames it over
    ``path`` (``os.replace``, atomic on POSIX and Windows). An exception in
    the ``with`` block, :meth:`discard`, or garbage collection before
    :meth:`close` removes the temporary file and leaves ``path`` as it was.
    A symlink at ``path`` is kept: its target is replaced.
    """

    def __init__(self, path, mode: str = 'w', **kwargs) -> None:
        if mode not in ('w', 'wb', 'wt'):
            raise ValueError(f'AtomicFile writes whole files (mode "w", '
                             f'"wt" or "wb"), got mode {mode!r}')
        self.path = osp.realpath(os.fspath(path))
        self._temp = _temp_path(self.path)
        self._closed = True  # until the temporary file exists
        # 'x': a fresh file, created with the permissions open() gives
        self._file = builtins.open(self._temp, mode.replace('w', 'x'),
                                   **kwargs)
        self._closed = False

    def write(self, data) -> int:
        return self._file.write(data)

    def __getattr__(self, name: str) -> Any:
        if name.startswith('_'):  # e.g. while __init__ failed
            raise AttributeError(name)
        return getattr(self._file, name)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> 'AtomicFile':
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()

    def close(self) -> None:
        """Commit: the written data replaces ``path``."""
        if self._closed:
            return
        self._closed = True
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            try:  # keep the mode of the file being replaced, as open() does
                os.chmod(self._temp, stat.S_IMODE(os.stat(self.path).st_mode))
            except OSError:
                pass
            os.replace(self._temp, self.path)
        except BaseException:
            self._file.close()
            _unlink_quietly(self._temp)
            raise
        _fsync_dir(osp.dirname(self.path))

    def discard(self) -> None:
        """Drop what was written; ``path`` stays as it was."""
        if self._closed:
            return
        self._closed = True
        try:
            self._file.close()
        except OSError:
            pass
        _unlink_quietly(self._temp)

    def __del__(self) -> None:
        if not getattr(self, '_closed', True):
            self.discard()


def atomic_open(path, mode: str = 'w', **kwargs):
    """``open(path, mode)`` for writing a whole file atomically
    (:class:`AtomicFile`). An existing ``path`` that is not a regular file
    (``/dev/null``, a pipe) is opened as the builtin ``open`` does."""
    real = osp.realpath(os.fspath(path))
    if osp.exists(real) and not osp.isfile(real):
        return builtins.open(path, mode, **kwargs)
    return AtomicFile(path, mode, **kwargs)


class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put``/``put_text`` replace the
    file atomically (:class:`AtomicFile`) instead of overwriting it in
    place; registered as the ``'local'`` backend by
    :func:`install_crash_safe_checkpoints`."""

    def put(self, obj: bytes, filepath) -> None:
        mmengine.mkdir_or_exist(osp.dirname(filepath))
        with atomic_open(filepath, 'wb') as f:
            f.write(obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        mmengine.mkdir_or_exist(osp.dirname(filepath))
        with atomic_open(filepath, 'w', encoding=encoding) as f:
            f.write(obj)


def _checkpoint_hook_open(file, mode: str = 'r', *args, **kwargs):
    """``open`` as seen by ``mmengine.hooks.checkpoint_hook``: the
    ``last_checkpoint`` pointer is written atomically, anything else is
    opened by the builtin ``open``."""
    if (mode in ('w', 'wt') and not args
            and isinstance(file, (str, os.PathLike))
            and osp.basename(os.fspath(file)) == POINTER):
        return atomic_open(file, mode, **kwargs)
    return builtins.open(file, mode, *args, **kwargs)


# -- named load errors ------------------------------------------------------
class CheckpointLoadError(RuntimeError):
    """A checkpoint file exists but ``torch.load`` fails on it (truncated or
    corrupt); ``path`` names it, ``reason`` is the original error in one
    line (also the ``__cause__``)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f'{path}: cannot load this checkpoint ({reason}). The file is '
            'truncated or corrupt, e.g. written by a run that was killed '
            'while saving it. Fix: delete it and use another checkpoint '
            '(tools/train.py --resume falls back to the newest older '
            'iter_N.pth/epoch_N.pth that loads).')


class ResumeError(RuntimeError):
    """``--resume`` found a ``last_checkpoint`` but no checkpoint that
    loads."""


def _one_line(exc: BaseException) -> str:
    """The error's type and first sentence (torch's go on for lines)."""
    text = str(exc).strip().splitlines()
    first = text[0].split('. ')[0].rstrip('.') if text else ''
    if len(first) > 200:
        first = first[:200] + '...'
    return f'{type(exc).__name__}: {first}' if first else type(exc).__name__


def _is_refused_global(exc: BaseException) -> bool:
    """torch.load(weights_only=True) refusing a global of a complete file:
    not corruption, raised unchanged (its message names the global)."""
    return (isinstance(exc, pickle.UnpicklingError)
            and 'Unsupported global' in str(exc))


def _checked_local_loader(upstream):

    @functools.wraps(upstream)  # keeps the name: "Loads checkpoint by local"
    def load_from_local(filename, map_location):
        try:
            return upstream(filename, map_location)
        except (FileNotFoundError, MemoryError):
            raise
        except Exception as exc:
            path = osp.expanduser(filename)
            if _is_refused_global(exc) or not osp.isfile(path):
                raise
            reason = f'{_one_line(exc)}; {osp.getsize(path)} bytes'
            raise CheckpointLoadError(path, reason) from exc

    load_from_local._rss_crash_safe = True
    return load_from_local


# -- resume -----------------------------------------------------------------
def _step_of(path: str) -> Optional[Tuple[str, int]]:
    match = _CHECKPOINT_RE.match(osp.basename(path))
    if match is None:
        return None
    return match['kind'], int(match['step'])


def fallback_checkpoints(directory: str,
                         broken: Optional[str] = None) -> List[str]:
    """``iter_N.pth``/``epoch_N.pth`` files of ``directory``, newest first.

    With ``broken`` (the checkpoint that failed), only files of its kind
    (iter/epoch) older than it, when its name has that form.
    """
    limit = _step_of(broken) if broken else None
    found = []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in names:
        step = _step_of(name)
        if step is None or not osp.isfile(osp.join(directory, name)):
            continue
        if limit is not None and (step[0] != limit[0] or step[1] >= limit[1]):
            continue
        # newest first; at the same step an iter_ file before an epoch_ one
        found.append((-step[1], step[0] != 'iter', name))
    return [osp.join(directory, name) for *_, name in sorted(found)]


def remove_stale_temp_files(directory: str) -> List[str]:
    """Delete temporary files of :class:`AtomicFile` whose writing process
    no longer runs (left by a killed run); returns their paths."""
    removed: List[str] = []
    if os.name != 'posix':  # os.kill(pid, 0) is no liveness probe there
        return removed
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = _TEMP_RE.match(name)
        if match is None or int(match['pid']) == os.getpid():
            continue
        try:
            os.kill(int(match['pid']), 0)
        except ProcessLookupError:
            pass  # the writer is gone: the file is a leftover
        except (OSError, OverflowError):
            continue  # e.g. running under another user: keep it
        else:
            continue  # still running: keep it
        path = osp.join(directory, name)
        _unlink_quietly(path)
        removed.append(path)
    return removed


def _read_pointer(work_dir: str) -> Optional[str]:
    pointer = osp.join(work_dir, POINTER)
    if not osp.exists(pointer):
        return None
    with builtins.open(pointer) as f:
        return f.read().strip()


def resume_crash_safe(runner, latest: str) -> str:
    """Resume ``runner`` from ``latest`` (what ``last_checkpoint`` names;
    ``''`` when the pointer is empty) or, when it is missing or does not
    load, from the newest older checkpoint that loads; returns the path
    resumed from. Raises :class:`ResumeError` when none loads."""
    pointer = osp.join(runner.work_dir, POINTER)
    directory = osp.dirname(latest) if latest else runner.work_dir
    if is_main_process():
        for folder in {directory, runner.work_dir}:
            for path in remove_stale_temp_files(folder):
                runner.logger.info(
                    f'Removed {path}, the temporary file of a checkpoint '
                    'whose writing was interrupted.')
    failures: List[Tuple[str, str]] = []
    if latest:
        candidates = [latest] + fallback_checkpoints(directory, latest)
    else:
        failures.append((pointer, 'is empty'))
        candidates = fallback_checkpoints(directory)
    for path in candidates:
        if not osp.isfile(path):
            failures.append((path, 'does not exist'))
            continue
        try:
            runner.resume(path)
        except CheckpointLoadError as exc:
            failures.append((path, exc.reason))
            continue
        if failures:
            broken = '; '.join(f'{p}: {why}' for p, why in failures)
            hint = ''
            if any(p != pointer and osp.isfile(p) for p, _ in failures):
                hint = (' A checkpoint that does not load is truncated or '
                        'corrupt, e.g. written by a run killed while saving '
                        'it: delete it.')
            runner.logger.warning(
                f'--resume: cannot resume from {broken}. Resumed from '
                f'{path} instead, the newest older checkpoint that loads; '
                f'the iterations after it are trained again.{hint}')
        runner.logger.info(f'Auto resumed from the latest checkpoint {path}.')
        runner._has_loaded = True
        return path
    listing = '\n'.join(f'  {p}: {why}' for p, why in failures) or (
        f'  (no iter_N.pth/epoch_N.pth in {directory})')
    raise ResumeError(
        f'--resume: {pointer} names {latest or "nothing"}, and no checkpoint '
        f'of {directory} can be loaded:\n{listing}\n'
        'They are truncated or corrupt (e.g. the run was killed while saving '
        'them), or missing.\n'
        f'Fix: delete the broken file(s) and {pointer}, then train without '
        '--resume to start over (resume=False), or resume from an intact '
        'copy: --resume --cfg-options load_from=PATH/TO/GOOD.pth')


def _crash_safe_load_or_resume(upstream):

    @functools.wraps(upstream)
    def load_or_resume(self) -> None:
        if self._has_loaded or not self._resume or self._load_from is not None:
            return upstream(self)
        latest = _read_pointer(self.work_dir)
        if latest is None or '://' in latest or osp.isdir(latest):
            # nothing to resume, a remote file, a checkpoint folder
            return upstream(self)
        resume_crash_safe(self, latest)

    load_or_resume._rss_crash_safe = True
    return load_or_resume


# -- installation -----------------------------------------------------------
def install_crash_safe_checkpoints() -> None:
    """Apply the three changes of this module (idempotent)."""
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    # get_file_backend(..., enable_singleton=True) caches instances
    for key, backend in list(_fileio_io.backend_instances.items()):
        if type(backend) is LocalBackend:
            _fileio_io.backend_instances[key] = AtomicLocalBackend()
    _checkpoint_hook_module.open = _checkpoint_hook_open

    loader = CheckpointLoader._schemes['']
    if not getattr(loader, '_rss_crash_safe', False):
        CheckpointLoader.register_scheme('',
                                         _checked_local_loader(loader),
                                         force=True)
    if not getattr(Runner.load_or_resume, '_rss_crash_safe', False):
        Runner.load_or_resume = _crash_safe_load_or_resume(
            Runner.load_or_resume)
