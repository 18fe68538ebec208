"""Install rss-mmseg, the Reward-in-Semantic-Segmentation plugin for MMSegmentation.

torch and mmcv (with ops) are not pulled from here on purpose: torch must come
from the wheel matching your machine, and mmcv must be built against it. Install
them first (``make venv`` does it in the right order), then ``pip install -e .``.
"""
from setuptools import find_packages, setup


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
