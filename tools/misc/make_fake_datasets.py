"""Write tiny fake VOC12aug / Pascal Context 59 / Cityscapes / ADE20K copies.

Same folders, file names, image-set lists and label encodings as the real
datasets after mmseg's converters (``rss_mmseg/datasets/fake_layouts.py``),
a few small images each, so the GPU-scale configs can be dry-run on a CPU::

    python tools/misc/make_fake_datasets.py -o data \
        --datasets voc12aug context59 cityscapes ade20k --seed 0

With ``-o data`` the folders are the stock configs' default ``data_root``s
(``data/VOCdevkit/VOC2012``, ...); elsewhere pass the printed ``data_root``
to every dataloader's dataset (and to both datasets of VOC12aug's
``ConcatDataset``).
"""
import argparse
import os.path as osp
import sys
from typing import Optional, Sequence

from rss_mmseg.datasets.fake_layouts import LAYOUTS, make_fake_dataset

# config name part -> the fake layout its datasets read
USED_BY = {
    'voc12aug': '*_voc12aug-*.py (PascalVOCDataset, ConcatDataset of '
    'SegmentationClass + SegmentationClassAug)',
    'context59': '*_pascal-context-59-*.py (PascalContextDataset59)',
    'cityscapes': '*_cityscapes-*.py (CityscapesDataset)',
    'ade20k': '*_ade20k-*.py (ADE20KDataset)',
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '-o', '--out-dir', required=True, help='folder to write them under')
    parser.add_argument(
        '--datasets',
        nargs='+',
        choices=sorted(LAYOUTS),
        default=list(LAYOUTS),
        help='which layouts (default: all)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-train', type=int, default=4)
    parser.add_argument('--num-val', type=int, default=2)
    args = parser.parse_args(argv)
    for name in args.datasets:
        root = make_fake_dataset(
            name,
            args.out_dir,
            seed=args.seed,
            num_train=args.num_train,
            num_val=args.num_val)
        print(f'[{name}] written to {osp.abspath(root)}\n'
              f'    used by configs {USED_BY[name]}\n'
              f'    pass data_root={root}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
