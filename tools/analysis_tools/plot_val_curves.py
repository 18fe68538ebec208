"""Plot a validation metric against the iteration for several training runs.

Reads every ``<work_dir>/*/vis_data/scalars.json`` that mmengine wrote (a
resumed run has several; ``bench_report.load_scalars`` merges them), so it
works on any ``tools/train.py`` work dir, finished or not. Runs whose logs
are gone can be drawn from recorded values with ``--points``.

Example::

    python tools/analysis_tools/plot_val_curves.py \\
        --run "PSR + PSD=work_dirs/rss-image" \\
        --run "PSR only=work_dirs/rss-image-no-psd" \\
        --points "CE (recorded)=1000:46.56,2000:44.04,3000:50.36,4000:50.66" \\
        --out docs/figures/image_miou_vs_iter.png
"""
import argparse
import glob
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from bench_report import load_scalars  # noqa: E402

Curve = Dict[int, float]


def read_val_curve(work_dir: str, metric: str = 'mIoU') -> Curve:
    """Validation ``metric`` by iteration from a work dir's scalars files."""
    paths = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not paths:
        raise FileNotFoundError(
            f'{work_dir}: no */vis_data/scalars.json (is it a tools/train.py '
            'work dir?)')
    _, val = load_scalars(work_dir)
    curve: Curve = {
        step: values[metric]
        for step, values in sorted(val.items()) if metric in values
    }
    if not curve:
        raise ValueError(f'{work_dir}: no validation record with '
                         f'{metric!r} yet')
    return curve


def parse_label(spec: str, option: str) -> Tuple[str, str]:
    """Split ``LABEL=VALUE``; the label may not be empty."""
    label, sep, value = spec.partition('=')
    if not sep or not label or not value:
        raise ValueError(f'{option} {spec!r}: expected LABEL=VALUE')
    return label, value


def parse_points(spec: str) -> Curve:
    """``1000:46.5,2000:48.1`` -> {1000: 46.5, 2000: 48.1}."""
    curve: Curve = {}
    for item in spec.split(','):
        step, sep, value = item.partition(':')
        if not sep:
            raise ValueError(f'--points {spec!r}: expected ITER:VALUE pairs '
                             'separated by commas')
        curve[int(step)] = float(value)
    return curve


def plot_curves(curves: List[Tuple[str, Curve, bool]], metric: str, out: str,
                title: Optional[str] = None) -> None:
    """One line per curve; recorded curves are dashed."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, curve, recorded in curves:
        steps = sorted(curve)
        ax.plot(
            steps, [curve[s] for s in steps],
            linestyle='--' if recorded else '-',
            marker='o',
            label=label)
    ax.set_xlabel('iteration')
    ax.set_ylabel(f'val {metric}')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--run',
        action='append',
        default=[],
        metavar='LABEL=WORK_DIR',
        help='a tools/train.py work dir (repeatable)')
    parser.add_argument(
        '--points',
        action='append',
        default=[],
        metavar='LABEL=ITER:VALUE,...',
        help='recorded values of a run whose logs are gone (dashed)')
    parser.add_argument('--metric', default='mIoU')
    parser.add_argument('--title')
    parser.add_argument('--out', required=True, help='output image (.png)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if not args.run and not args.points:
        raise SystemExit('nothing to plot: give --run and/or --points')
    curves = []
    for spec in args.run:
        label, work_dir = parse_label(spec, '--run')
        curves.append((label, read_val_curve(work_dir, args.metric), False))
    for spec in args.points:
        label, values = parse_label(spec, '--points')
        curves.append((label, parse_points(values), True))
    plot_curves(curves, args.metric, args.out, args.title)
    for label, curve, _ in curves:
        last = max(curve)
        print(f'{label}: {args.metric} {curve[last]:.2f} at {last}')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
