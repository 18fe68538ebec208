"""OpenMMLab packaging: configs, tools and the model index under
``rss_mmseg/.mim``, as mmseg ships them.

* a config in a project outside the repository inherits
  ``rss_mmseg::rss/...`` and trains, with the package imported from this
  checkout (editable install) and from a wheel built from it;
* ``mim train rss_mmseg CONFIG`` / ``mim test rss_mmseg CONFIG --checkpoint``
  find the config by its name in the installed wheel and run its tools;
* ``model-index.yml`` and the metafiles parse and name existing configs.

The wheel is built from a copy of the working tree (``git ls-files``:
tracked files and new ones not ignored) with this environment's setuptools,
installed with ``pip install --target`` and put first on ``PYTHONPATH``, so
that it, not the editable checkout, is what mmengine and mim find.
"""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import zipfile

import pytest
import yaml

from tests.conftest import REPO_ROOT, as_cfg_options, tiny_run_overrides

CFG_NAME = 'rss-pixel_fast-scnn_1xb8-1k_synthetic-128x128.py'
USER_BASE = f'rss_mmseg::rss/{CFG_NAME}'
MIM_DIR = osp.join(REPO_ROOT, 'rss_mmseg', '.mim')
MIM_LINKS = {'configs': 'configs', 'tools': 'tools',
             'model-index.yml': 'model-index.yml'}
COPY_IGNORE = shutil.ignore_patterns('.git', '.venv', 'data', 'work_dirs',
                                     'results', 'build', '*.egg-info',
                                     '__pycache__', '*.pyc', '.pytest_cache')


def _env(pythonpath=None):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env.pop('PYTHONPATH', None)
    if pythonpath:
        env['PYTHONPATH'] = pythonpath
    return env


def _run(cmd, cwd, env, timeout=600):
    result = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout)
    return result, result.stdout + result.stderr


def _copy_working_tree(dst):
    """What a commit of the working tree would hold (links kept)."""
    try:
        listed = subprocess.run(
            ['git', 'ls-files', '-co', '--exclude-standard', '-z'],
            cwd=REPO_ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(REPO_ROOT, dst, symlinks=True, ignore=COPY_IGNORE)
        return
    for rel in filter(None, listed.decode().split('\0')):
        src = osp.join(REPO_ROOT, rel)
        if not osp.lexists(src):  # deleted, not yet committed
            continue
        os.makedirs(osp.dirname(osp.join(dst, rel)), exist_ok=True)
        shutil.copy2(src, osp.join(dst, rel), follow_symlinks=False)


@pytest.fixture(scope='module')
def wheel_site(tmp_path_factory):
    """``pip wheel`` of the working tree, installed into its own folder."""
    root = tmp_path_factory.mktemp('wheel')
    src, dist, site = root / 'src', root / 'dist', root / 'site'
    _copy_working_tree(str(src))
    pip = [sys.executable, '-m', 'pip']
    result, log = _run(pip + [
        'wheel', '--no-deps', '--no-build-isolation', '--no-index', '-q',
        '-w', str(dist), str(src)], str(root), _env())
    assert result.returncode == 0, log[-4000:]
    wheels = [str(p) for p in dist.glob('rss_mmseg-*.whl')]
    assert len(wheels) == 1, wheels
    result, log = _run(pip + [
        'install', '--no-deps', '--no-index', '-q', '--target', str(site),
        wheels[0]], str(root), _env())
    assert result.returncode == 0, log[-4000:]
    return dict(wheel=wheels[0], site=str(site), src=str(src))


def test_checkout_links_configs_tools_and_index():
    """An editable install imports rss_mmseg from here: its .mim holds
    relative links to the originals."""
    for name, target in MIM_LINKS.items():
        path = osp.join(MIM_DIR, name)
        assert osp.islink(path), f'{path} is not a symbolic link'
        assert not osp.isabs(os.readlink(path)), os.readlink(path)
        assert osp.realpath(path) == osp.realpath(
            osp.join(REPO_ROOT, target)), path
    assert osp.isfile(osp.join(MIM_DIR, 'configs', 'rss', CFG_NAME))
    assert osp.isfile(osp.join(MIM_DIR, 'tools', 'train.py'))


def test_wheel_carries_configs_and_tools(wheel_site):
    with zipfile.ZipFile(wheel_site['wheel']) as whl:
        infos = whl.infolist()
    names = {info.filename for info in infos}
    links = [i.filename for i in infos
             if (i.external_attr >> 16) & 0o170000 == 0o120000]
    assert not links, f'symbolic links in the wheel: {links}'
    assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]
    prefix = 'rss_mmseg/.mim/'
    src = wheel_site['src']
    expected = set()
    for top in ('configs', 'tools'):
        for dirpath, dirnames, filenames in os.walk(osp.join(src, top)):
            dirnames[:] = [d for d in dirnames if d != '__pycache__']
            for filename in filenames:
                rel = osp.relpath(osp.join(dirpath, filename), src)
                expected.add(prefix + rel.replace(os.sep, '/'))
    expected.add(prefix + 'model-index.yml')
    shipped = {n for n in names if n.startswith(prefix)}
    assert shipped == expected, (
        f'missing: {sorted(expected - shipped)[:10]}, '
        f'extra: {sorted(shipped - expected)[:10]}')
    for rel in (f'configs/rss/{CFG_NAME}', 'configs/rss/metafile.yaml',
                'tools/train.py', 'tools/test.py'):
        assert prefix + rel in names, rel
    with zipfile.ZipFile(wheel_site['wheel']) as whl:
        copied = whl.read(prefix + f'configs/rss/{CFG_NAME}')
    with open(osp.join(REPO_ROOT, 'configs', 'rss', CFG_NAME), 'rb') as f:
        assert copied == f.read()


# Run from a project folder outside the repository: load the user config,
# report where everything came from, then train it for one iteration.
_USER_SCRIPT = r'''
import json, os.path as osp, sys
import rss_mmseg
from mmengine.config import Config
from mmengine.runner import Runner
from rss_mmseg.utils import check_config

cfg = Config.fromfile('my_cfg.py')
loaded = [osp.normpath(line) for line in cfg.text.splitlines()
          if line.endswith('.py') and osp.isfile(line)]
head = cfg.model.decode_head
print('FACTS ' + json.dumps(dict(
    package=osp.dirname(osp.abspath(rss_mmseg.__file__)), loaded=loaded,
    head=head.type, inner=head.head.type, temperature=head.temperature,
    reward=head.reward.type, dataset=cfg.train_dataloader.dataset.type)))
cfg.merge_from_dict(json.loads(sys.argv[1]))
check_config(cfg, 'my_cfg.py')
Runner.from_cfg(cfg).train()
'''


@pytest.mark.parametrize('install', ['checkout', 'wheel'])
def test_user_config_inherits_installed_config(install, tmp_path,
                                               synthetic_root, request):
    if install == 'wheel':
        site = request.getfixturevalue('wheel_site')['site']
        package_dir, env = osp.join(site, 'rss_mmseg'), _env(site)
    else:
        package_dir, env = osp.join(REPO_ROOT, 'rss_mmseg'), _env()
    project = tmp_path / 'my_project'
    project.mkdir()
    (project / 'my_cfg.py').write_text(
        f'_base_ = {USER_BASE!r}\n'
        'model = dict(decode_head=dict(temperature=2.0))\n')
    (project / 'load.py').write_text(_USER_SCRIPT)
    work_dir = str(tmp_path / 'work')
    overrides = tiny_run_overrides(synthetic_root, work_dir, 1)
    overrides['model.data_preprocessor.size'] = [64, 64]
    result, log = _run(
        [sys.executable, 'load.py', json.dumps(overrides)], str(project), env)
    facts = re.search(r'^FACTS (.*)$', result.stdout, re.M)
    if install == 'checkout' and facts and not json.loads(
            facts.group(1))['package'] == package_dir:
        pytest.skip('rss_mmseg in this environment is not the editable '
                    f'install of this checkout: {facts.group(1)}')
    assert facts, log[-4000:]
    facts = json.loads(facts.group(1))
    assert facts['package'] == package_dir
    configs = osp.join(package_dir, '.mim', 'configs')
    # the installed config, and its relative bases next to it
    assert osp.join(configs, 'rss', CFG_NAME) in facts['loaded'], facts
    assert osp.join(configs, 'baselines',
                    'ce_fast-scnn_1xb8-1k_synthetic-128x128.py'
                    ) in facts['loaded'], facts
    assert osp.join(configs, '_base_', 'datasets',
                    'synthetic.py') in facts['loaded'], facts
    assert facts['head'] == 'RSSHead'
    assert facts['reward'] == 'PixelMatchReward'
    assert facts['temperature'] == 2.0
    assert facts['dataset'] == 'SyntheticShapesDataset'
    # components inherited through rss_mmseg:: carry _scope_='rss_mmseg'
    # (rss_mmseg.registry): the runner builds and trains them
    assert result.returncode == 0, log[-4000:]
    assert osp.isfile(osp.join(work_dir, 'iter_1.pth')), log[-3000:]
    assert re.search(r'mIoU: \d', log), log[-3000:]


@pytest.fixture(scope='module')
def mim_install(wheel_site):
    """mim finds rss_mmseg in the installed wheel (an editable install
    hides the package from mim, as it does mmseg's): its PYTHONPATH and
    its ``.mim``."""
    return dict(pythonpath=wheel_site['site'],
                mim_dir=osp.join(wheel_site['site'], 'rss_mmseg', '.mim'))


@pytest.fixture(scope='module')
def mim_trained(mim_install, synthetic_root, tmp_path_factory):
    """``mim train rss_mmseg CFG_NAME`` (2 iterations) from outside the
    repository."""
    cwd = tmp_path_factory.mktemp('mim_project')
    work_dir = str(cwd / 'work')
    opts = as_cfg_options(tiny_run_overrides(synthetic_root, work_dir, 2))
    result, log = _run(
        [sys.executable, '-m', 'mim', 'train', 'rss_mmseg', CFG_NAME,
         '--work-dir', work_dir, '--cfg-options', *opts], str(cwd),
        _env(mim_install['pythonpath']))
    return dict(result=result, log=log, work_dir=work_dir, cwd=str(cwd),
                opts=opts)


def test_mim_train(mim_trained, mim_install):
    log = mim_trained['log']
    assert mim_trained['result'].returncode == 0, log[-4000:]
    mim_dir = mim_install['mim_dir']
    assert f'will use {osp.join(mim_dir, "configs", "rss", CFG_NAME)}' in log
    assert (f'Training command is {sys.executable} '
            f'{osp.join(mim_dir, "tools", "train.py")} ') in log, log[-4000:]
    assert osp.isfile(osp.join(mim_trained['work_dir'], 'iter_2.pth')), \
        log[-3000:]


def test_mim_test(mim_trained, mim_install):
    ckpt = osp.join(mim_trained['work_dir'], 'iter_2.pth')
    if not osp.isfile(ckpt):
        pytest.fail(f'mim train wrote no checkpoint:\n'
                    f'{mim_trained["log"][-3000:]}')
    result, log = _run(
        [sys.executable, '-m', 'mim', 'test', 'rss_mmseg', CFG_NAME,
         '--checkpoint', ckpt, '--work-dir',
         osp.join(mim_trained['cwd'], 'test'), '--cfg-options',
         *mim_trained['opts']], mim_trained['cwd'],
        _env(mim_install['pythonpath']))
    assert result.returncode == 0, log[-4000:]
    mim_dir = mim_install['mim_dir']
    assert (f'Testing command is {sys.executable} '
            f'{osp.join(mim_dir, "tools", "test.py")} ') in log, log[-4000:]
    miou = re.findall(r'Iter\(test\).*?mIoU: ([\d.]+)', log)
    assert miou, log[-3000:]
    assert 0.0 <= float(miou[-1]) <= 100.0


def _models():
    with open(osp.join(REPO_ROOT, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    assert index['Import'], 'model-index.yml imports no metafile'
    for rel in index['Import']:
        path = osp.join(REPO_ROOT, rel)
        assert osp.isfile(path), f'model-index.yml: {rel} does not exist'
        with open(path) as f:
            meta = yaml.safe_load(f)
        collections = {c['Name']: c for c in meta['Collections']}
        for model in meta['Models']:
            yield rel, collections, model


def test_model_index_and_metafiles():
    with open(osp.join(REPO_ROOT, 'configs', 'rss', 'README.md')) as f:
        readme = f.read()
    models = list(_models())
    assert {m['Name'] for _, _, m in models} >= {
        'ce_fast-scnn_1xb8-4k_camvid-176x240',
        'rss-pixel_fast-scnn_1xb8-4k_camvid-176x240',
        'rss-image_fast-scnn_1xb8-4k_camvid-176x240'}
    for rel, collections, model in models:
        where = f'{rel}: {model.get("Name")}'
        config = model['Config']
        assert config.startswith('configs/'), where
        assert osp.isfile(osp.join(REPO_ROOT, config)), f'{where}: {config}'
        assert model['Name'] == osp.splitext(osp.basename(config))[0], where
        assert model['In Collection'] in collections, where
        readme_rel = collections[model['In Collection']].get('README')
        assert osp.isfile(osp.join(REPO_ROOT, readme_rel)), where
        assert 'Weights' not in model, f'{where}: no checkpoints are shipped'
        results = model['Results']
        assert results['Task'] == 'Semantic Segmentation', where
        miou = results['Metrics']['mIoU']
        assert isinstance(miou, float) and 0 < miou < 100, where
        # the same figure in the config README's results table
        rows = [line for line in readme.splitlines()
                if line.startswith('|') and f'{model["Name"]}.py' in line]
        assert rows, f'{where}: no row in configs/rss/README.md'
        assert f'| {miou:.2f} |' in rows[0], f'{where}: {rows[0]}'
    for metafile in {rel for rel, _, _ in models}:
        assert osp.isfile(osp.join(MIM_DIR, metafile)), metafile


def test_mmengine_reads_the_installed_index():
    """mmengine reads .mim/model-index.yml on every ``rss_mmseg::`` load;
    each model is found by its config path."""
    from mmengine.config.utils import _get_cfg_metainfo

    import rss_mmseg  # noqa: F401
    package = osp.join(REPO_ROOT, 'rss_mmseg')
    for _, _, model in _models():
        cfg_path = model['Config'].partition('/')[-1]
        assert _get_cfg_metainfo(package, cfg_path)['Name'] == model['Name']
