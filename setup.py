"""Install rss-mmseg, the Reward-in-Semantic-Segmentation plugin for MMSegmentation.

torch and mmcv (with ops) are not pulled from here on purpose: torch must come
from the wheel matching your machine, and mmcv must be built against it. Install
them first (``make venv`` does it in the right order), then ``pip install -e .``.

OpenMMLab packaging (MIM): the package carries ``configs/``, ``tools/`` and
``model-index.yml`` under ``rss_mmseg/.mim``, so that ``_base_ =
'rss_mmseg::rss/...'`` (mmengine) and ``mim train/test rss_mmseg CONFIG``
find them in an installed package. In the repository ``rss_mmseg/.mim``
holds relative symbolic links to them (committed in git), which is all an
editable install (``pip install -e .``, PEP 660) needs; a wheel or an sdist
gets real copies (``build_py`` below and ``MANIFEST.in``). mmseg's setup.py
makes these links or copies at install time from ``sys.argv`` (``develop``
vs ``bdist_wheel``); under PEP 660 pip runs ``editable_wheel``, which that
test misses. ``mim train/test`` look for the package next to its metadata
(``site-packages/rss_mmseg``), which an editable install does not have:
they need a regular install; ``rss_mmseg::`` works with both
(``rss_mmseg/registry.py``).
"""
import os
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
# What rss_mmseg/.mim holds (paths relative to the repository root).
MIM_FILES = ('configs', 'tools', 'model-index.yml')
MIM_IGNORE = shutil.ignore_patterns('__pycache__', '*.pyc', '*.pyo')


def copy_mim_files(mim_dir: str, src_root: str = HERE) -> None:
    """Copy ``MIM_FILES`` from ``src_root`` into ``mim_dir`` (real files,
    links followed; an older copy there is replaced)."""
    if osp.realpath(mim_dir) == osp.realpath(
            osp.join(src_root, 'rss_mmseg', '.mim')):
        return  # never replace the checkout's own links with copies
    if osp.islink(mim_dir):
        os.remove(mim_dir)
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        src, dst = osp.join(src_root, name), osp.join(mim_dir, name)
        if not osp.exists(src):
            raise FileNotFoundError(f'{src}: needed in rss_mmseg/.mim')
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if osp.isdir(src):
            shutil.copytree(src, dst, ignore=MIM_IGNORE)
        else:
            shutil.copyfile(src, dst)


class BuildPyWithMim(build_py):
    """``build_py`` that also copies configs, tools and model-index.yml into
    the built package's ``.mim`` folder (wheels, ``pip install .``).

    Editable installs build nothing here: the package is imported from the
    repository, whose ``rss_mmseg/.mim`` links to the originals.
    """

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        copy_mim_files(osp.join(self.build_lib, 'rss_mmseg', '.mim'))


def readme() -> str:
    with open('README.md', encoding='utf-8') as f:
        return f.read()


def version() -> str:
    scope: dict = {}
    with open('rss_mmseg/version.py', encoding='utf-8') as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='rss_mmseg',
    version=version(),
    description='Reward in Semantic Segmentation (RSS): train mmseg models '
    'from pixel- or image-level rewards',
    long_description=readme(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    cmdclass={'build_py': BuildPyWithMim},
    python_requires='>=3.8',
    install_requires=[
        'mmcv>=2.0.0rc4,<2.2.0',
        'mmengine>=0.10,<1.0',
        'mmsegmentation>=1.2,<1.3',
        'ftfy',
        'regex',
    ],
    extras_require={
        'mmpretrain': ['mmpretrain>=1.0,<2.0'],
        'tests': ['pytest', 'matplotlib'],
    },
    license='Apache License 2.0',
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
