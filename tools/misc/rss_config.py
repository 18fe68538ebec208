"""Write the RSS version of any mmseg config.

    python tools/misc/rss_config.py \
        mmseg::pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py \
        --level image -o configs/rss/rss-image_pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py

The written config inherits the source (``_base_``) and overrides only the
heads (each decode head, every cascade stage, wrapped in ``RSSHead``;
auxiliary heads wrapped at pixel level, removed at image level),
``custom_hooks`` (RSS's guards, PSR at image level) and ``custom_imports``
(the source's plus ``rss_mmseg``). The recipes are in
``rss_mmseg/utils/rss_config.py``. Unless ``--no-check``, the written
config is loaded and its model built (no weights downloaded), so a head
RSS cannot train is reported now, with the reason and the fix.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config

import rss_mmseg  # noqa: F401  registers components, the rss_mmseg:: scope
from rss_mmseg.utils import check_config, resolve_config_path
from rss_mmseg.utils.rss_config import IMAGE_SCALES, LEVELS, rss_overrides

HEADER = '''# {level}-level RSS version of {source}
# (written by tools/misc/rss_config.py). The heads are trained from
# {what} instead of labels; everything else is inherited unchanged.
'''


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write the RSS version of an mmseg config')
    parser.add_argument(
        'config', help='source config: a path or mmseg::<family>/<name>.py')
    parser.add_argument('--level', choices=LEVELS, required=True)
    parser.add_argument('-o', '--out', required=True, help='output .py file')
    parser.add_argument(
        '--scales',
        type=int,
        nargs='+',
        default=list(IMAGE_SCALES),
        help='image level: PSR grids over equal parts of training')
    parser.add_argument(
        '--no-check',
        action='store_true',
        help='do not build the written model to check it')
    return parser.parse_args(argv)


def config_text(source: str, level: str, scales) -> str:
    """The text of the RSS child config of ``source``."""
    cfg = Config.fromfile(resolve_config_path(source))
    overrides = rss_overrides(cfg, level, scales)
    model = overrides['model']
    if isinstance(model['decode_head'], dict):
        model['decode_head']['_delete_'] = True  # the dict replaces the base
    if isinstance(model.get('auxiliary_head'), dict):
        model['auxiliary_head']['_delete_'] = True
    heads = {
        key: model[key]
        for key in ('decode_head', 'auxiliary_head') if key in model
    }
    body = Config(
        dict(
            custom_imports=overrides['custom_imports'],
            randomness=overrides['randomness'],
            model=heads,
            custom_hooks=overrides['custom_hooks'])).pretty_text
    what = 'per-pixel rewards' if level == 'pixel' else (
        'one mIoU reward per image (PSR grids ' +
        ' -> '.join(map(str, scales)) + ', PSD)')
    return (HEADER.format(level=level, source=source, what=what) +
            f'_base_ = {source!r}\n' + body)


def check(path: str) -> None:
    """Load the written config and build its model (no weights)."""
    from mmseg.registry import MODELS
    cfg = Config.fromfile(path)
    check_config(cfg, path)
    MODELS.build(cfg.model)


def main(argv=None) -> int:
    args = parse_args(argv)
    source = args.config
    if '::' not in source and not osp.isfile(source):
        print(f'error: {source}: no such config', file=sys.stderr)
        return 2
    if '::' not in source:
        # inherit through a path relative to the written file
        source = osp.relpath(
            osp.abspath(source), osp.dirname(osp.abspath(args.out)))
        text = config_text(args.config, args.level, args.scales).replace(
            f'_base_ = {args.config!r}', f'_base_ = {source!r}', 1)
    else:
        text = config_text(source, args.level, args.scales)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w', encoding='utf-8') as f:
        f.write(text)
    if not args.no_check:
        try:
            check(args.out)
        except Exception as error:
            print(f'error: {args.out} was written but its model does not '
                  f'build: {error}', file=sys.stderr)
            return 1
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
