"""Tables, plots and a picture grid from benchmark runs (tools/benchmark.py).

Reads what mmengine already writes into a work dir (the ``scalars.json`` of
its LocalVisBackend, one per launch of a resumed run) and the checkpoints;
knows nothing of the methods themselves. Used by ``tools/benchmark.py``; the
functions are importable for other analyses::

    from analysis_tools.bench_report import load_scalars
    train, val = load_scalars('results/bench_camvid/ce/seed0')
"""
import csv
import glob
import json
import os
import os.path as osp
import statistics
import textwrap
from typing import Any, Dict, List, Optional, Sequence, Tuple

Scalars = Dict[int, Dict[str, float]]  # step -> {key: value}

# Keys a method may log its mean reward / PSR scale under, by preference.
REWARD_KEYS = ('decode.reward', 'reward', 'decode.reward_mean', 'reward_mean')
IGNORE_COLOUR = (255, 255, 255)


def load_scalars(run_dir: str) -> Tuple[Scalars, Scalars]:
    """Return ``(train, val)`` scalars of one run, merged over its launches.

    Every launch of a run (the first and each ``--resume``) writes its own
    ``<run_dir>/<timestamp>/vis_data/scalars.json``. Launches are merged in
    time order; a later launch restarts from a checkpoint, so what an earlier
    launch logged from the later one's first step on is a discarded
    trajectory and is dropped. Val lines are those carrying ``mIoU``. Lines
    that do not parse (a run killed mid-write) are skipped.

    Args:
        run_dir (str): the mmengine work dir of one training.

    Returns:
        tuple[dict, dict]: train and val scalars as ``{step: {key: value}}``.
    """
    train: Scalars = {}
    val: Scalars = {}
    paths = sorted(
        glob.glob(osp.join(run_dir, '*', 'vis_data', 'scalars.json')))
    for path in paths:
        launch_train: Scalars = {}
        launch_val: Scalars = {}
        with open(path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(record, dict):
                    continue
                step = record.get('step', record.get('iter'))
                if not isinstance(step, (int, float)):
                    continue
                values = {
                    k: float(v)
                    for k, v in record.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)
                }
                target = launch_val if 'mIoU' in record else launch_train
                target.setdefault(int(step), {}).update(values)
        if launch_train:
            first = min(launch_train)
            for old in (train, val):
                for step in [s for s in old if s >= first]:
                    del old[step]
        train.update(launch_train)
        val.update(launch_val)
    return train, val


def find_key(scalars: Scalars, preferred: Sequence[str],
             suffixes: Sequence[str] = ()) -> Optional[str]:
    """The first key of ``preferred`` logged anywhere, else one ending with
    any of ``suffixes`` (no ``loss`` in it), else None."""
    keys = set()
    for values in scalars.values():
        keys.update(values)
    for key in preferred:
        if key in keys:
            return key
    for key in sorted(keys):
        if 'loss' not in key and any(key.endswith(s) for s in suffixes):
            return key
    return None


def series(scalars: Scalars, key: Optional[str]) -> Dict[int, float]:
    """``{step: value}`` of one key (empty when the key is None)."""
    if key is None:
        return {}
    return {s: v[key] for s, v in sorted(scalars.items()) if key in v}


def reward_key(train: Scalars) -> Optional[str]:
    return find_key(train, REWARD_KEYS, suffixes=('.reward', ))


def psr_key(train: Scalars) -> Optional[str]:
    return find_key(train, ('psr_scale', 'decode.psr_scale'),
                    suffixes=('psr_scale', ))


def median_spread(values: Sequence[float]) -> Tuple[float, float, float]:
    """(median, min, max) of a non-empty sequence."""
    return statistics.median(values), min(values), max(values)


def ratio(value: Optional[float], ref: Optional[float]) -> Optional[float]:
    """``value / ref``; None when either is missing or ``ref`` is not > 0."""
    if value is None or ref is None or ref <= 0:
        return None
    return value / ref


# --------------------------------------------------------------- the table
COLUMNS = [
    # (csv/json key, markdown header, format)
    ('method', 'method', '{}'),
    ('reward_level', 'reward level', '{}'),
    ('miou', 'val mIoU (median)', '{:.2f}'),
    ('miou_min', 'min', '{:.2f}'),
    ('miou_max', 'max', '{:.2f}'),
    ('miou_x_ce', 'mIoU x CE', '{:.3f}'),
    ('s_per_iter', 's/iter', '{:.4f}'),
    ('s_per_iter_x_ce', 's/iter x CE', '{:.3f}'),
    ('peak_mib', 'peak MiB', '{:.1f}'),
    ('peak_mib_x_ce', 'peak x CE', '{:.3f}'),
    ('iters', 'iters', '{}'),
    ('seeds', 'seeds done', '{}'),
    ('note', 'note', '{}'),
]


# The fine-tuning table: every ratio and delta is against ce-continued
# (tools/benchmark.py FINETUNE_REFERENCE), the run with as many extra
# iterations of cross-entropy from the same checkpoint.
FINETUNE_COLUMNS = [
    ('method', 'method', '{}'),
    ('reward_level', 'reward level', '{}'),
    ('starts_from', 'starts from', '{}'),
    ('miou', 'val mIoU (median)', '{:.2f}'),
    ('miou_min', 'min', '{:.2f}'),
    ('miou_max', 'max', '{:.2f}'),
    ('miou_delta', 'delta mIoU vs ce-continued', '{:+.2f}'),
    ('bf', 'mBFscore (median)', '{:.2f}'),
    ('bf_delta', 'delta mBF vs ce-continued', '{:+.2f}'),
    ('s_per_iter', 's/iter', '{:.4f}'),
    ('s_per_iter_x_ref', 's/iter x ce-continued', '{:.3f}'),
    ('peak_mib', 'peak MiB', '{:.1f}'),
    ('peak_mib_x_ref', 'peak x ce-continued', '{:.3f}'),
    ('iters', 'iters', '{}'),
    ('seeds', 'seeds done', '{}'),
    ('note', 'note', '{}'),
]
# per-seed columns of the fine-tuning CSV (JSON objects, as per_seed)
FINETUNE_PER_SEED = ('per_seed', 'per_seed_bf', 'per_seed_miou_delta',
                     'per_seed_bf_delta', 'per_seed_start_miou')


def _cell(value: Any, fmt: str) -> str:
    if value is None or value == '':
        return '-'
    return fmt.format(value)


def format_markdown(rows: List[Dict[str, Any]], header: List[str],
                    columns: Sequence[Tuple[str, str, str]] = COLUMNS) -> str:
    """A Markdown table (one row per method) under ``header`` lines."""
    lines = list(header) + ['']
    lines.append('| ' + ' | '.join(c[1] for c in columns) + ' |')
    lines.append('|' + '|'.join('---' for _ in columns) + '|')
    for row in rows:
        lines.append('| ' + ' | '.join(
            _cell(row.get(key), fmt) for key, _, fmt in columns) + ' |')
    return '\n'.join(lines) + '\n'


def parse_markdown_tables(text: str) -> List[List[Dict[str, str]]]:
    """Every Markdown table in ``text`` (runs of lines starting with
    ``|``), each as rows of {header: cell}."""
    blocks: List[List[str]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if line.startswith('|'):
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    tables = []
    for table in (b for b in blocks if len(b) >= 2):
        names = [c.strip() for c in table[0].strip('|').split('|')]
        tables.append([
            dict(zip(names, (c.strip() for c in ln.strip('|').split('|'))))
            for ln in table[2:]
        ])
    return tables


def parse_markdown_table(text: str) -> List[Dict[str, str]]:
    """Rows of the first Markdown table in ``text`` as {header: cell}."""
    tables = parse_markdown_tables(text)
    return tables[0] if tables else []


def _write_csv(path: str, rows: List[Dict[str, Any]],
               columns: Sequence[Tuple[str, str, str]],
               per_seed: Sequence[str]) -> None:
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(
            f, fieldnames=[c[0] for c in columns] + ['config', *per_seed],
            extrasaction='ignore')
        writer.writeheader()
        for row in rows:
            writer.writerow({
                **{k: ('' if v is None else v) for k, v in row.items()},
                **{k: json.dumps(row.get(k, {})) for k in per_seed}})


def write_table(
    rows: List[Dict[str, Any]],
    header: List[str],
    meta: Dict[str, Any],
    out_dir: str,
    finetune: Optional[Tuple[List[Dict[str, Any]], List[str]]] = None
) -> Dict[str, str]:
    """Write ``table.md``, ``table.csv`` and ``table.json``; return paths.

    With ``finetune`` = (rows, header lines), the fine-tuning table
    (FINETUNE_COLUMNS) follows the first one in ``table.md``, goes to
    ``table_finetune.csv`` and to ``finetune_rows`` in ``table.json``.
    """
    paths = {ext: osp.join(out_dir, f'table.{ext}')
             for ext in ('md', 'csv', 'json')}
    text = format_markdown(rows, header)
    if finetune is not None:
        text += '\n' + format_markdown(*finetune, columns=FINETUNE_COLUMNS)
    with open(paths['md'], 'w') as f:
        f.write(text)
    _write_csv(paths['csv'], rows, COLUMNS, ('per_seed', ))
    table = dict(meta=meta, rows=rows)
    if finetune is not None:
        paths['finetune_csv'] = osp.join(out_dir, 'table_finetune.csv')
        _write_csv(paths['finetune_csv'], finetune[0], FINETUNE_COLUMNS,
                   FINETUNE_PER_SEED)
        table['finetune_rows'] = finetune[0]
    with open(paths['json'], 'w') as f:
        json.dump(table, f, indent=2)
    return paths


# ------------------------------------------------------------------ plots
def _plot_setup():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _add_note(fig, note: str, width: int) -> float:
    """Write ``note`` (wrapped) at the figure's bottom; return the fraction
    of the height it takes."""
    if not note:
        return 0.0
    lines = textwrap.wrap(note, width)
    fig.text(0.01, 0.005, '\n'.join(lines), fontsize=6, color='gray',
             va='bottom', family='monospace')
    return (len(lines) * 9 + 6) / (fig.get_figheight() * fig.dpi)


def plot_curves(curves: Dict[str, List[Dict[int, float]]], out_png: str,
                title: str, ylabel: str, note: str = '',
                steps: bool = False, xlabel: str = 'iteration') -> str:
    """One chart: per method, the median over seeds at each step, with the
    min-max band when there are several seeds.

    Args:
        curves (dict): method -> one ``{step: value}`` dict per seed; methods
            with no points are left out (and named in the chart's note).
        out_png (str): where to write the PNG.
        title (str): chart title.
        ylabel (str): y-axis label.
        note (str): printed at the bottom (the command that rebuilds it).
        steps (bool): draw piecewise-constant lines (a schedule).
        xlabel (str): x-axis label.
    """
    plt = _plot_setup()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    missing = []
    for method, per_seed in curves.items():
        per_seed = [s for s in per_seed if s]
        if not per_seed:
            missing.append(method)
            continue
        xs = sorted({step for s in per_seed for step in s})
        stats = [median_spread([s[x] for s in per_seed if x in s])
                 for x in xs]
        med = [s[0] for s in stats]
        line, = ax.plot(xs, med, marker='o', markersize=3, label=method,
                        drawstyle='steps-post' if steps else 'default')
        if len(per_seed) > 1:
            ax.fill_between(xs, [s[1] for s in stats],
                            [s[2] for s in stats], alpha=0.2,
                            color=line.get_color(),
                            step='post' if steps else None)
    if missing:
        ax.text(0.01, 0.01, 'not logged by: ' + ', '.join(missing),
                transform=ax.transAxes, fontsize=7, color='gray')
    if not any(curves.get(m) for m in curves if m not in missing):
        ax.text(0.5, 0.5, 'no method logged this value', ha='center',
                va='center', transform=ax.transAxes)
    else:
        ax.legend(fontsize=8)
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, _add_note(fig, note, 140), 1, 1))
    fig.savefig(out_png)
    plt.close(fig)
    return out_png


# ---------------------------------------------------------- picture grid
def colorize(label, palette) -> 'np.ndarray':
    """(H, W) class ids -> (H, W, 3) uint8 RGB; ignored ids are white."""
    import numpy as np
    lut = np.zeros((256, 3), np.uint8)
    lut[:] = IGNORE_COLOUR
    lut[:len(palette)] = np.asarray(palette, np.uint8)
    return lut[label.astype(np.int64).clip(0, 255)]


def predict_val_images(models: List[Tuple[str, Any, str]],
                       num_images: int) -> Dict[str, Any]:
    """Predict a few evenly spread val images with each model.

    Args:
        models (list): ``(method, config (mmengine Config), checkpoint)``;
            the val set is built from the first config.
        num_images (int): how many val images.

    Returns:
        dict: ``images`` (RGB arrays), ``references``, ``predictions``
        (method -> list of label arrays), ``classes``, ``palette``,
        ``names`` (file names).
    """
    import cv2
    import numpy as np
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmseg.apis import init_model
    from mmseg.registry import DATASETS

    import rss_mmseg  # noqa: F401  registers the heads, datasets, losses

    first_cfg = models[0][1]
    init_default_scope(first_cfg.get('default_scope', 'mmseg'))
    dataset = DATASETS.build(first_cfg.val_dataloader.dataset)
    count = min(num_images, len(dataset))
    indices = sorted({int(round(i))
                      for i in np.linspace(0, len(dataset) - 1, count)})
    samples = [dataset[i] for i in indices]
    out = dict(images=[], references=[], predictions={}, names=[],
               classes=list(dataset.metainfo['classes']),
               palette=[list(p) for p in dataset.metainfo['palette']])
    for sample in samples:
        meta = sample['data_samples']
        img = cv2.imread(meta.img_path, cv2.IMREAD_COLOR)
        out['images'].append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        out['references'].append(meta.gt_sem_seg.data[0].numpy())
        out['names'].append(osp.basename(meta.img_path))
    for method, cfg, checkpoint in models:
        model = init_model(cfg, checkpoint, device='cpu')
        preds = []
        with torch.no_grad():
            for sample in samples:
                result = model.test_step(pseudo_collate([sample]))[0]
                preds.append(result.pred_sem_seg.data[0].cpu().numpy())
        out['predictions'][method] = preds
    return out


def picture_grid(pred: Dict[str, Any], out_png: str, note: str = '') -> str:
    """Rows = val images; columns = image, reference, one per method."""
    import numpy as np
    plt = _plot_setup()
    from matplotlib.patches import Patch
    methods = list(pred['predictions'])
    cols = 2 + len(methods)
    rows = len(pred['images'])
    h, w = pred['images'][0].shape[:2]
    cell = 2.2
    fig, axes = plt.subplots(
        rows, cols, figsize=(cell * cols * w / max(h, w) + 0.4,
                             cell * rows * h / max(h, w) + 1.2),
        dpi=110, squeeze=False)
    titles = ['image', 'reference'] + methods
    for r in range(rows):
        panels = [pred['images'][r],
                  colorize(pred['references'][r], pred['palette'])]
        panels += [colorize(pred['predictions'][m][r], pred['palette'])
                   for m in methods]
        for c, panel in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(np.asarray(panel))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(pred['names'][r], fontsize=7)
    handles = [Patch(color=np.asarray(p) / 255.0, label=n)
               for n, p in zip(pred['classes'], pred['palette'])]
    handles.append(Patch(facecolor='white', edgecolor='gray',
                         label='ignored'))
    bottom = _add_note(fig, note, int(fig.get_figwidth() * 18))
    ncol = len(handles) if len(handles) <= 8 else (len(handles) + 1) // 2
    legend = fig.legend(handles=handles, loc='lower center', ncol=ncol,
                        fontsize=7, frameon=False,
                        bbox_to_anchor=(0.5, bottom))
    rows_of_legend = 1 if len(handles) <= 8 else 2
    fig.tight_layout(rect=(0, bottom + rows_of_legend * 0.3 /
                           fig.get_figheight() + 0.01, 1, 1))
    del legend
    fig.savefig(out_png)
    plt.close(fig)
    return out_png


def newest_mtime(paths: Sequence[str]) -> float:
    """The latest modification time among existing ``paths`` (0 if none)."""
    times = [os.stat(p).st_mtime for p in paths if osp.exists(p)]
    return max(times) if times else 0.0
