"""tools/benchmark.py --quick end to end, and the pieces it is built from.

The end-to-end part trains every from-scratch quick-mode method whose config
exists on a tiny synthetic set (a few dozen iterations each) and one reward
fine-tuning method (``rss-finetune-boundary``, which brings its reference
``ce-continued``; 16 iterations each from the quick CE run of the same
seed), times them, and writes the tables, plots and picture grid; about 2
to 3 minutes on 2 busy cores. A second invocation must skip everything that
is done. The planning and scheduling of fine-tuning runs are also tested
without training.
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


# the fine-tuning method of the end-to-end run (ce-continued comes with it)
FINETUNE_METHOD = 'rss-finetune-boundary'
FINETUNE_EXPECTED = ['ce-continued', FINETUNE_METHOD]


def _expected_methods():
    """The from-scratch methods: ce and rss-pixel always; the others when
    their quick config exists."""
    return [m for m, method in benchmark.METHODS.items()
            if method.start_from is None and method.quick is not None
            and osp.isfile(osp.join(REPO_ROOT, method.quick))]


def _quick_args(results):
    return ['--quick', '--results', str(results), '--methods',
            *_expected_methods(), FINETUNE_METHOD]


@pytest.fixture(scope='module')
def quick_bench(tmp_path_factory):
    results = tmp_path_factory.mktemp('bench')
    start = time.time()
    out = run_tool('benchmark.py', _quick_args(results), timeout=900)
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


def test_quick_finetune_table_and_start(quick_bench):
    """The fine-tuning run starts from the quick CE run of its seed, and its
    row carries the deltas against ce-continued."""
    bench_dir = quick_bench['dir']
    stdout = quick_bench['stdout']
    assert '[bench] added ce-continued: it is the reference' in stdout
    with open(osp.join(bench_dir, 'table.md')) as f:
        scratch_md, tuned_md = bench_report.parse_markdown_tables(f.read())
    assert [r['method'] for r in scratch_md] == _expected_methods()
    assert [r['method'] for r in tuned_md] == FINETUNE_EXPECTED
    by_md = _rows_by_method(tuned_md)
    assert by_md['ce-continued']['delta mIoU vs ce-continued'] == '+0.00'
    assert by_md['ce-continued']['s/iter x ce-continued'] == '1.000'
    assert by_md[FINETUNE_METHOD]['starts from'] == (
        f'ce ({benchmark.QUICK_ITERS} it)')
    with open(osp.join(bench_dir, 'table_finetune.csv')) as f:
        assert [r['method'] for r in csv.DictReader(f)] == FINETUNE_EXPECTED
    with open(osp.join(bench_dir, 'table.json')) as f:
        table = json.load(f)
    rows = _rows_by_method(table['finetune_rows'])
    cont, tuned = rows['ce-continued'], rows[FINETUNE_METHOD]
    for row in (cont, tuned):
        assert row['iters'] == benchmark.QUICK_FINETUNE_ITERS, row
        assert row['seeds'] == '1/1' and row['reference'] == 'ce-continued'
        assert 0.0 <= row['miou'] <= 100.0, row
        assert row['s_per_iter'] > 0 and row['peak_mib'] >= 0, row
        assert row['per_seed_start_miou'] == {
            '0': table['rows'][0]['miou']}  # the quick CE run's final mIoU
    assert tuned['miou_delta'] == pytest.approx(tuned['miou'] - cont['miou'])
    assert tuned['per_seed_miou_delta'] == {'0': tuned['miou_delta']}
    assert cont['s_per_iter_x_ref'] == 1.0
    assert tuned['s_per_iter_x_ref'] == pytest.approx(
        tuned['s_per_iter'] / cont['s_per_iter'])
    # mBFscore is logged by both (on the synthetic set it may be NaN: no
    # reference boundary is scored there; the table then shows '-')
    for method in FINETUNE_EXPECTED:
        run_dir = osp.join(bench_dir, method, 'seed0')
        _, val = bench_report.load_scalars(run_dir)
        assert sorted(val) == [benchmark.QUICK_FINETUNE_ITERS // 2,
                               benchmark.QUICK_FINETUNE_ITERS]
        assert all('mBFscore' in v for v in val.values()), val
        with open(osp.join(run_dir, 'bench_run.json')) as f:
            stamp = json.load(f)
        ckpt = osp.join(bench_dir, 'ce', 'seed0',
                        f'iter_{benchmark.QUICK_ITERS}.pth')
        assert stamp['load_from'] == ckpt
        assert f'load_from={ckpt}' in stamp['command']
        with open(osp.join(run_dir, 'train.log')) as f:
            log_text = f.read()
        assert f'Load checkpoint from {ckpt}' in log_text
        assert 'do not match exactly' not in log_text  # all keys loaded
    if tuned.get('bf') is not None and cont.get('bf') is not None:
        assert tuned['bf_delta'] == pytest.approx(tuned['bf'] - cont['bf'])
    # the fine-tuning runs were timed beside the others
    assert set(table['meta']['timing']['methods']) == set(
        _expected_methods() + FINETUNE_EXPECTED)


@pytest.mark.parametrize('name', [
    'miou_vs_iter.png', 'reward_vs_iter.png', 'psr_scale_vs_iter.png',
    'pictures.png', 'finetune_miou_vs_iter.png',
    'finetune_bfscore_vs_iter.png', 'finetune_reward_vs_iter.png'
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
    assert [r[0] for r in meta['runs']] == (_expected_methods()
                                            + FINETUNE_EXPECTED)
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
    out = run_tool('benchmark.py', _quick_args(quick_bench['results']),
                   timeout=300)
    elapsed = time.time() - start
    assert out.returncode == 0, out.stderr[-3000:]
    for method in _expected_methods() + FINETUNE_EXPECTED:
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


# ------------------------------------------- fine-tuning: planning only
def _plan(tmp_path, argv, methods=None):
    args = benchmark.parse_args(argv)
    methods, _ = benchmark.resolve_methods(methods or args.methods,
                                           args.quick)
    root = 'data/x' if args.quick else benchmark.CAMVID_DATA
    runs, skipped = benchmark.plan_runs(args, str(tmp_path), root, methods)
    return {(r.method, r.seed): r for r in runs}, skipped


def test_resolve_methods_adds_what_fine_tuning_needs():
    methods, added = benchmark.resolve_methods(['rss-finetune-miou'], False)
    assert methods == ['ce', 'ce-continued', 'rss-finetune-miou']
    assert added[0].startswith('added ce-continued: it is the reference')
    assert added[1].startswith('added ce: ce-continued, rss-finetune-miou '
                               'start(s) from its final checkpoint')
    assert len(added) == 2  # ce came as the starting method
    assert benchmark.resolve_methods(['ce', 'rss-pixel'], True) == (
        ['ce', 'rss-pixel'], [])
    assert benchmark.resolve_methods(['rss-pixel'], True)[0] == [
        'ce', 'rss-pixel']
    everything, added = benchmark.resolve_methods(None, True)
    # every fine-tuning method that has a quick config, after the
    # from-scratch ones, in table order
    finetune = [
        m for m in benchmark.METHODS
        if benchmark.is_finetune(m) and benchmark.METHODS[m].quick
    ]
    assert finetune[:6] == [
        'ce-continued', 'lovasz-finetune', 'rss-finetune-miou',
        'rss-finetune-miou-local', 'rss-finetune-miou-local-anchor',
        'rss-finetune-miou-pooled'
    ]
    assert everything[-len(finetune):] == finetune
    assert added == []
    # a method without a quick config (no boundary band on the synthetic
    # set) is left out of --quick, and kept on CamVid
    assert 'rss-finetune-boundary-local' not in everything
    assert 'rss-finetune-boundary-local' in benchmark.resolve_methods(
        None, False)[0]


def test_plan_quick_finetune_runs_start_from_the_same_seed(tmp_path):
    runs, skipped = _plan(tmp_path, ['--quick', '--seeds', '0', '1',
                                     '--methods', 'lovasz-finetune'])
    assert skipped == {}
    assert sorted(runs) == sorted(
        (m, s) for m in ('ce', 'ce-continued', 'lovasz-finetune')
        for s in (0, 1))
    for seed in (0, 1):
        ce, tuned = runs['ce', seed], runs['lovasz-finetune', seed]
        assert ce.after is None and 'load_from' not in ce.options
        assert ce.max_iters == benchmark.QUICK_ITERS
        assert tuned.after is ce
        assert tuned.options['load_from'] == osp.join(
            str(tmp_path), 'ce', f'seed{seed}',
            f'iter_{benchmark.QUICK_ITERS}.pth')
        assert tuned.max_iters == benchmark.QUICK_FINETUNE_ITERS
        assert tuned.options['train_cfg.max_iters'] == tuned.max_iters
        assert tuned.options['param_scheduler.0.end'] == tuned.max_iters
        assert tuned.options['train_cfg.val_interval'] == tuned.max_iters // 2
        assert tuned.options['randomness.seed'] == seed
        assert tuned.config.endswith('_synthetic-128x128.py')
        assert tuned.work_dir == osp.join(str(tmp_path), 'lovasz-finetune',
                                          f'seed{seed}')
        assert tuned.stamp()['load_from'] == tuned.options['load_from']
        assert 'load_from' not in ce.stamp()
        # a resumed fine-tuning run continues its own checkpoints: mmengine
        # would resume from load_from (the CE run) if it were passed
        fresh, resumed = tuned.command(False), tuned.command(True)
        assert f'load_from={tuned.options["load_from"]}' in fresh
        assert '--resume' in resumed
        assert not any(a.startswith('load_from=') for a in resumed)


def test_plan_iters_and_finetune_iters_are_separate(tmp_path):
    from mmengine.config import Config
    tuned_cfg = Config.fromfile(
        osp.join(REPO_ROOT, benchmark.METHODS['ce-continued'].camvid),
        import_custom_modules=False)
    # --iters stretches the starting ce runs only
    runs, _ = _plan(tmp_path, ['--iters', '20', '--methods', 'ce-continued'])
    ce, cont = runs['ce', 0], runs['ce-continued', 0]
    assert ce.max_iters == 20
    assert cont.max_iters == tuned_cfg.train_cfg.max_iters
    assert 'train_cfg.max_iters' not in cont.options
    assert cont.options['load_from'].endswith(
        osp.join('ce', 'seed0', 'iter_20.pth'))
    assert cont.work_dir == osp.join(str(tmp_path), 'ce-continued', 'seed0')
    # --finetune-iters: the fine-tuning budget, in its own folder
    runs, _ = _plan(tmp_path, ['--finetune-iters', '10', '--methods',
                               'ce-continued'])
    ce, cont = runs['ce', 0], runs['ce-continued', 0]
    assert cont.max_iters == 10 and cont.options['train_cfg.max_iters'] == 10
    assert ce.max_iters == 4000 and 'train_cfg.max_iters' not in ce.options
    assert cont.work_dir == osp.join(str(tmp_path), 'ce-continued_10it',
                                     'seed0')
    assert cont.options['load_from'].endswith(
        osp.join('ce', 'seed0', 'iter_4000.pth'))
    args = benchmark.parse_args(['--finetune-iters', '10'])
    assert '--finetune-iters 10' in benchmark.reproduce_command(
        args, 'b', ['ce', 'ce-continued'])
    assert '--finetune-iters' not in benchmark.reproduce_command(
        args, 'b', ['ce'])


def test_plan_skips_users_of_a_skipped_start(tmp_path, monkeypatch):
    ce = benchmark.METHODS['ce']
    monkeypatch.setitem(benchmark.METHODS, 'ce', ce._replace(quick=None))
    runs, skipped = _plan(tmp_path, ['--quick', '--methods', 'ce-continued'])
    assert runs == {}
    assert skipped['ce'] == 'no config for this benchmark'
    assert skipped['ce-continued'] == (
        'it starts from ce, which is not run (no config for this '
        'benchmark)')


def test_finetune_rows_pair_deltas_by_seed(tmp_path):
    runs, _ = _plan(tmp_path, ['--quick', '--seeds', '0', '1', '--methods',
                               FINETUNE_METHOD])
    # final val (mIoU, mBFscore) of each run; seed 1's mBFscore is NaN
    finals = {('ce', 0): (10.0, None), ('ce', 1): (20.0, None),
              ('ce-continued', 0): (12.0, 40.0),
              ('ce-continued', 1): (21.0, 50.0),
              (FINETUNE_METHOD, 0): (13.0, 45.0),
              (FINETUNE_METHOD, 1): (21.5, float('nan'))}
    for key, (miou, bf) in finals.items():
        run = runs[key]
        last = dict(mIoU=miou, step=run.max_iters)
        if bf is not None:
            last['mBFscore'] = bf
        _write_launch(run.work_dir, '20260101_000000', [
            dict(loss=1.0, step=1), dict(mIoU=1.0, mBFscore=1.0, step=1),
            last])
        open(run.final_checkpoint, 'w').close()
    timing = dict(methods={
        'ce': dict(s_per_iter=0.2, peak_mib=100.0),
        'ce-continued': dict(s_per_iter=0.2, peak_mib=100.0),
        FINETUNE_METHOD: dict(s_per_iter=0.23, peak_mib=110.0)})
    rows = benchmark.finetune_rows(FINETUNE_EXPECTED, list(runs.values()),
                                   {}, timing, [0, 1])
    cont, tuned = rows
    assert cont['miou_delta'] == 0.0 and cont['bf_delta'] == 0.0
    assert tuned['seeds'] == '2/2' and tuned['miou'] == 17.25
    assert tuned['per_seed_miou_delta'] == {0: 1.0, 1: 0.5}
    assert tuned['miou_delta'] == 0.75  # paired: not 17.25 - 16.5
    assert tuned['per_seed_bf'] == {0: 45.0} and tuned['bf'] == 45.0
    assert tuned['per_seed_bf_delta'] == {0: 5.0}
    assert tuned['start_miou'] == 15.0
    assert tuned['s_per_iter_x_ref'] == pytest.approx(1.15)
    assert tuned['s_per_iter_x_ce'] == pytest.approx(1.15)
    assert tuned['peak_mib_x_ref'] == pytest.approx(1.1)
    paths = bench_report.write_table([], ['# t'], {}, str(tmp_path),
                                     (rows, ['## ft']))
    with open(paths['md']) as f:
        _, md = bench_report.parse_markdown_tables(f.read())
    assert md[1]['delta mIoU vs ce-continued'] == '+0.75'
    assert md[1]['mBFscore (median)'] == '45.00'
    assert md[1]['delta mBF vs ce-continued'] == '+5.00'
    with open(paths['finetune_csv']) as f:
        csv_rows = list(csv.DictReader(f))
    assert json.loads(csv_rows[1]['per_seed_bf_delta']) == {'0': 5.0}


# ---------------------------------------- fine-tuning: scheduling only
class _FakeProc:
    """A finished training: exit code, the final checkpoint if it worked."""

    def __init__(self, run, exitcode):
        self.exitcode = exitcode
        self.pid = 0
        if exitcode == 0:
            os.makedirs(run.work_dir, exist_ok=True)
            open(run.final_checkpoint, 'w').close()


def _fake_start(monkeypatch, fail=()):
    started = []

    def start(run, threads):
        # a fine-tuning run starts only once its starting run has finished
        started.append((run.name, run.after is None or run.after.finished()))
        run.proc = _FakeProc(run, 1 if run.name in fail else 0)
        run.started = time.time()

    monkeypatch.setattr(benchmark, 'start', start)
    return started


def test_train_all_starts_fine_tuning_after_its_start(tmp_path, monkeypatch):
    started = _fake_start(monkeypatch)
    runs, _ = _plan(tmp_path, ['--quick', '--seeds', '0', '1', '--methods',
                               'ce-continued'])
    order = [runs['ce', 0], runs['ce', 1], runs['ce-continued', 0],
             runs['ce-continued', 1]]
    benchmark.train_all(order, jobs=4, threads=1)
    assert [r.state for r in order] == ['finished'] * 4
    assert [name for name, _ in started] == [
        'ce seed0', 'ce seed1', 'ce-continued seed0', 'ce-continued seed1']
    assert all(ready for _, ready in started), started


def test_train_all_fails_users_of_a_failed_start(tmp_path, monkeypatch,
                                                 capsys):
    fail = {'ce seed1'}
    started = _fake_start(monkeypatch, fail)
    runs, _ = _plan(tmp_path, ['--quick', '--seeds', '0', '1', '--methods',
                               'ce-continued'])
    order = [runs['ce', 0], runs['ce', 1], runs['ce-continued', 0],
             runs['ce-continued', 1]]
    benchmark.train_all(order, jobs=2, threads=1)
    assert [r.state for r in order] == ['finished', 'failed', 'finished',
                                        'failed']
    assert [name for name, _ in started] == [
        'ce seed0', 'ce seed1', 'ce-continued seed0']
    note = runs['ce-continued', 1].note
    assert note.startswith('not started: it fine-tunes ce seed1, which '
                           'failed (training failed (exit 1))'), note
    assert 'FAILED ce-continued seed1: not started' in capsys.readouterr().out
    # a second invocation: finished runs are skipped, the failed start is
    # trained again and its user after it
    started.clear()
    fail.clear()
    for run in order:
        run.state, run.note = 'pending', ''
    benchmark.train_all(order, jobs=2, threads=1)
    assert [name for name, _ in started] == ['ce seed1', 'ce-continued seed1']
    assert [r.state for r in order] == ['finished'] * 4


def test_start_state_of_a_fine_tuning_run(tmp_path):
    runs, _ = _plan(tmp_path, ['--quick', '--methods', 'ce-continued'])
    ce, cont = runs['ce', 0], runs['ce-continued', 0]
    assert benchmark.start_state(ce) == ('ready', '')
    assert benchmark.start_state(cont) == ('wait',
                                           'waits for ce seed0 to finish')
    ce.state, ce.note = 'running-elsewhere', 'training in process 7'
    state, note = benchmark.start_state(cont)
    assert state == 'not run' and 'training in process 7' in note
    ce.state, ce.note = 'failed', 'training failed (exit 1)'
    assert benchmark.start_state(cont) == ('failed', (
        'not started: it fine-tunes ce seed0, which failed (training failed '
        '(exit 1))'))
    ce.state, ce.note = 'finished', ''  # but its checkpoint is not there
    state, note = benchmark.start_state(cont)
    assert state == 'failed' and 'iter_40.pth is missing' in note
    os.makedirs(ce.work_dir)
    open(ce.final_checkpoint, 'w').close()
    assert benchmark.start_state(cont) == ('ready', '')


def test_parse_markdown_tables_reads_each_table():
    text = ('# t\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n## ft\n\n'
            '| c |\n|---|\n| 3 |\n| 4 |\n')
    assert bench_report.parse_markdown_tables(text) == [
        [{'a': '1', 'b': '2'}], [{'c': '3'}, {'c': '4'}]]
    assert bench_report.parse_markdown_table(text) == [{'a': '1', 'b': '2'}]
