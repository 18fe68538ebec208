"""Generate the embedded synthetic dataset (textured shapes) in mmseg layout.

Example::

    python tools/dataset_converters/synthetic.py -o data/synthetic --seed 0
"""
import argparse
import sys
from typing import Optional, Sequence

from rss_mmseg.datasets.synthetic import DEFAULTS, ensure_synthetic_dataset


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-o', '--out-dir', default='data/synthetic')
    for key, value in DEFAULTS.items():
        parser.add_argument('--' + key.replace('_', '-'), type=int,
                            default=value)
    args = vars(parser.parse_args(argv))
    out = ensure_synthetic_dataset(args.pop('out_dir'), **args)
    print(f'[synthetic] dataset ready in {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
