"""tools/benchmark.py --quick end to end, and the pieces it is built from.

The end-to-end part trains every quick-mode method whose config exists on a
tiny synthetic set (a few dozen iterations each), times them, and writes the
table, plots and picture grid; about 2 minutes on 2 busy cores. A second
invocation must skip everything that is done.
"""
import csv
import json
import os
import os.path as osp
import time

import pytest

from tests.conftest import REPO_ROOT, load_tool, run_tool

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'

benchmark = load_tool('benchmark.py', 'benchmark_under_test')
bench_report = benchmark.report


def _expected_methods():
    """ce and rss-pixel always; the others when their quick config exists."""
    return [m for m, (_, _, quick) in benchmark.METHODS.items()
            if quick is not None and osp.isfile(osp.join(REPO_ROOT, quick))]


@pytest.fixture(scope='module')
def quick_bench(tmp_path_factory):
    results = tmp_path_factory.mktemp('bench')
    start = time.time()
    out = run_tool('benchmark.py', ['--quick', '--results', str(results)],
                   timeout=900)
    elapsed = time.time() - start
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    return dict(results=str(results), dir=osp.join(str(results),
                                                   'bench_quick'),
                stdout=out.stdout, elapsed=elapsed)


def _rows_by_method(rows):
    return {row['method']: row for row in rows}


def test_quick_table_markdown_csv_json(quick_bench):
    expected = _expected_methods()
    assert expected[:2] == ['ce', 'rss-pixel'], expected
    bench_dir = quick_bench['dir']

    with open(osp.join(bench_dir, 'table.md')) as f:
        md = bench_report.parse_markdown_table(f.read())
    with open(osp.join(bench_dir, 'table.csv')) as f:
        rows_csv = list(csv.DictReader(f))
    with open(osp.join(bench_dir, 'table.json')) as f:
        table = json.load(f)
    for rows in (md, rows_csv, table['rows']):
        assert [r['method'] for r in rows] == expected

    by_md = _rows_by_method(md)
    assert by_md['ce']['reward level'] == 'labels (CE)'
    assert by_md['rss-pixel']['reward level'] == 'pixel'
    for column in ('mIoU x CE', 's/iter x CE', 'peak x CE'):
        assert float(by_md['ce'][column]) == 1.0, (column, by_md['ce'])

    for row in table['rows']:
        assert row['seeds'] == '1/1', row
        assert row['iters'] == benchmark.QUICK_ITERS
        assert 0.0 <= row['miou'] <= 100.0, row
        assert row['miou_min'] <= row['miou'] <= row['miou_max']
        assert row['s_per_iter'] > 0 and row['peak_mib'] >= 0, row
    ce = _rows_by_method(table['rows'])['ce']
    for key in ('miou_x_ce', 's_per_iter_x_ce'):
        assert ce[key] == 1.0, (key, ce)
    rss = _rows_by_method(table['rows'])['rss-pixel']
    assert rss['miou_x_ce'] == pytest.approx(rss['miou'] / ce['miou'])
    assert rss['s_per_iter_x_ce'] == pytest.approx(
        rss['s_per_iter'] / ce['s_per_iter'])

    for row in rows_csv:
        assert 0.0 <= float(row['miou']) <= 100.0, row
    assert float(_rows_by_method(rows_csv)['ce']['miou_x_ce']) == 1.0

    machine = table['meta']['timing']['machine']
    assert machine['cores'] >= 1 and machine['cpu'], machine


@pytest.mark.parametrize('name', [
    'miou_vs_iter.png', 'reward_vs_iter.png', 'psr_scale_vs_iter.png',
    'pictures.png'
])
def test_quick_pngs(quick_bench, name):
    path = osp.join(quick_bench['dir'], name)
    with open(path, 'rb') as f:
        data = f.read()
    assert data[:8] == PNG_MAGIC, name
    assert len(data) > 10_000, (name, len(data))
    # IHDR: width and height, big-endian, right after the 8-byte signature
    # and the chunk's length/type
    width = int.from_bytes(data[16:20], 'big')
    height = int.from_bytes(data[20:24], 'big')
    assert width >= 300 and height >= 200, (name, width, height)


def test_quick_picture_grid_has_every_method(quick_bench):
    with open(osp.join(quick_bench['dir'], 'pictures.json')) as f:
        meta = json.load(f)
    assert [r[0] for r in meta['runs']] == _expected_methods()
    import matplotlib.image
    img = matplotlib.image.imread(osp.join(quick_bench['dir'],
                                           'pictures.png'))
    assert img.std() > 0.05  # images and references, not a blank canvas


def test_quick_report_names_commands(quick_bench):
    with open(osp.join(quick_bench['dir'], 'report.md')) as f:
        text = f.read()
    assert 'python tools/benchmark.py --quick' in text
    assert '--skip-train' in text
    for png in ('miou_vs_iter.png', 'pictures.png'):
        assert f']({png})' in text
    assert 'reproduce: python tools/benchmark.py' in quick_bench['stdout']
    print(f'quick benchmark: {quick_bench["elapsed"]:.0f} s')


def test_second_run_skips_finished_runs(quick_bench):
    ckpt = osp.join(quick_bench['dir'], 'ce', 'seed0',
                    f'iter_{benchmark.QUICK_ITERS}.pth')
    mtime = osp.getmtime(ckpt)
    start = time.time()
    out = run_tool('benchmark.py',
                   ['--quick', '--results', quick_bench['results']],
                   timeout=300)
    elapsed = time.time() - start
    assert out.returncode == 0, out.stderr[-3000:]
    for method in _expected_methods():
        assert f'skip {method} seed0: finished' in out.stdout, out.stdout
    assert '[bench] start ' not in out.stdout
    assert 'skip timing' in out.stdout and 'skip pictures' in out.stdout
    assert osp.getmtime(ckpt) == mtime
    assert elapsed < 60, elapsed


# --------------------------------------------------------- the pieces
def _write_launch(run_dir, stamp, lines):
    path = osp.join(run_dir, stamp, 'vis_data')
    os.makedirs(path)
    with open(osp.join(path, 'scalars.json'), 'w') as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line))
                    + '\n')


def test_load_scalars_merges_resumed_launches(tmp_path):
    run = str(tmp_path)
    # first launch: train to 30, val at 20, killed after logging 30 (and
    # mid-write); checkpoint at 20
    _write_launch(run, '20260101_000000', [
        dict(loss=1.0, step=10), dict(loss=0.9, step=20),
        dict(mIoU=10.0, step=20), dict(loss=0.8, **{'decode.reward': 0.3},
                                       step=30), '{"loss": 0.'
    ])
    # resumed from 20: re-logs 30 and goes on
    _write_launch(run, '20260101_010000', [
        dict(loss=0.7, **{'decode.reward': 0.4}, step=30),
        dict(loss=0.6, psr_scale=8, step=40), dict(mIoU=20.0, step=40)
    ])
    train, val = bench_report.load_scalars(run)
    assert sorted(train) == [10, 20, 30, 40]
    assert train[30]['loss'] == 0.7  # the resumed trajectory wins
    assert sorted(val) == [20, 40] and val[40]['mIoU'] == 20.0
    assert bench_report.reward_key(train) == 'decode.reward'
    assert bench_report.series(train, bench_report.reward_key(train)) == {
        30: 0.4}
    assert bench_report.psr_key(train) == 'psr_scale'


def test_schedule_options_scale_with_iters():
    from mmengine.config import Config
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, benchmark.METHODS['ce'][1]),
        import_custom_modules=False)
    old = cfg.train_cfg.max_iters
    opts = benchmark.schedule_options(cfg, old // 10)
    assert opts['train_cfg.max_iters'] == old // 10
    assert opts['train_cfg.val_interval'] == max(
        1, round(cfg.train_cfg.val_interval / 10))
    assert opts['param_scheduler.0.end'] == old // 10
    assert benchmark.schedule_options(cfg, old) == {}
    cfg.custom_hooks = [dict(type='X', milestones=[old // 4, old // 2]),
                        dict(type='Y', milestones=[0.25, 0.5])]
    opts = benchmark.schedule_options(cfg, old // 2)
    assert opts['custom_hooks.0.milestones'] == [old // 8, old // 4]
    assert 'custom_hooks.1.milestones' not in opts  # fractions stay


def test_format_option_round_trips_through_dict_action():
    import argparse

    from mmengine.config import DictAction
    options = {'a.size': (64, 64), 'b.list': [1, 2], 'c.flag': False,
               'd.root': '/tmp/x'}
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    parsed = parser.parse_args(['--o', *benchmark.as_cfg_options(options)]).o
    assert parsed == options
