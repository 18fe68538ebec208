"""tools/analysis_tools/bench_image_step.py: step time against CE, with
the losses of one PSR grid."""
import json
import os.path as osp

from tests.conftest import REPO_ROOT, run_tool

IMAGE = osp.join(REPO_ROOT, 'configs/rss',
                 'rss-image_fast-scnn_1xb8-1k_synthetic-128x128.py')
CE = osp.join(REPO_ROOT, 'configs/baselines',
              'ce_fast-scnn_1xb8-1k_synthetic-128x128.py')
SCRIPT = 'analysis_tools/bench_image_step.py'


def test_times_the_named_losses_against_ce(tmp_path):
    out = tmp_path / 'bench.json'
    args = [IMAGE, '--ce-config', CE, '--ks', '2', '--scale', '8',
            '--rounds', '1']
    result = run_tool(SCRIPT, args + ['--losses', 'loss_psd', '--out',
                                      str(out)])
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())['rows']
    assert [r['name'] for r in rows] == ['ce', 'K=2']
    assert rows[1]['s'] > 0 and 0 < rows[1]['reward_share'] < 1
    refused = run_tool(SCRIPT, args + ['--losses', 'loss_local'])
    assert refused.returncode != 0
    assert "one or more of this head's losses ['loss_psd']" in \
        refused.stderr
