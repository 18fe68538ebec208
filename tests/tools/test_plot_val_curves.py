"""tools/analysis_tools/plot_val_curves.py on hand-written scalars files."""
import json
import os
import os.path as osp

import pytest

from tests.conftest import load_tool


def _load():
    return load_tool('analysis_tools/plot_val_curves.py', 'plot_val_curves')


def _write_scalars(work_dir, stamp, records):
    path = osp.join(work_dir, stamp, 'vis_data')
    os.makedirs(path)
    with open(osp.join(path, 'scalars.json'), 'w') as f:
        for record in records:
            f.write(json.dumps(record) + '\n')


def test_reads_val_records_across_resumed_logs_and_plots(tmp_path, capsys):
    tool = _load()
    run = str(tmp_path / 'run')
    _write_scalars(run, '20260101_000000', [
        dict(loss=1.0, iter=10, step=10),
        dict(mIoU=10.0, aAcc=50.0, step=1000),
        dict(mIoU=20.0, step=2000),
    ])
    # resumed from 1000: its 2000 wins, 3000 is new
    _write_scalars(run, '20260102_000000', [
        dict(mIoU=21.5, step=2000),
        dict(mIoU=30.0, step=3000),
    ])
    assert tool.read_val_curve(run) == {1000: 10.0, 2000: 21.5, 3000: 30.0}
    assert tool.read_val_curve(run, 'aAcc') == {1000: 50.0}
    out = str(tmp_path / 'curves.png')
    tool.main(['--run', f'RSS={run}', '--points', 'CE=1000:40,3000:45.5',
               '--out', out])
    assert osp.getsize(out) > 1000
    printed = capsys.readouterr().out
    assert 'RSS: mIoU 30.00 at 3000' in printed
    assert 'CE: mIoU 45.50 at 3000' in printed


def test_errors_name_the_problem(tmp_path):
    tool = _load()
    with pytest.raises(FileNotFoundError, match='no .*scalars.json'):
        tool.read_val_curve(str(tmp_path))
    _write_scalars(str(tmp_path), 'a', [dict(loss=1.0, iter=1, step=1)])
    with pytest.raises(ValueError, match="no validation record with 'mIoU'"):
        tool.read_val_curve(str(tmp_path))
    with pytest.raises(ValueError, match='LABEL=VALUE'):
        tool.parse_label('no-label', '--run')
    with pytest.raises(ValueError, match='ITER:VALUE'):
        tool.parse_points('1000=3')
    with pytest.raises(SystemExit, match='nothing to plot'):
        tool.main(['--out', str(tmp_path / 'x.png')])
