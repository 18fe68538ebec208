"""Convert CamVid as SegNet distributes it into mmseg layout.

Input (the SegNet tutorial's ``CamVid/`` folder)::

    SRC/{train,val,test}.txt   lines "IMAGE ANNOTATION" (relative, or the
                               absolute /SegNet/CamVid/... paths of the tutorial)
    SRC/{train,val,test}/*.png|*.jpg   RGB images
    SRC/{train,val,test}annot/*.png    uint8 labels 0..10, 11 = void

Output::

    OUT/img_dir/{split}/NAME.png   (or --img-suffix .jpg)
    OUT/ann_dir/{split}/NAME.png   labels 0..10, void -> 255

Splits whose list file is missing are skipped with a message (e.g. a copy
without the test split). Any label value above 11 is an error naming the file.

Example::

    python tools/dataset_converters/camvid.py ../shared/data/camvid -o data/camvid
"""
import argparse
import os
import os.path as osp
import shutil
import sys
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

CAMVID_VOID = 11
IGNORE_INDEX = 255
SPLITS = ('train', 'val', 'test')


def _resolve(src: str, path: str) -> str:
    """Map a list-file entry (relative, or SegNet's absolute path) into src."""
    if not osp.isabs(path):
        return osp.join(src, path)
    # '/SegNet/CamVid/train/x.png' -> SRC/train/x.png
    folder, name = osp.split(path)
    return osp.join(src, osp.basename(folder), name)


def read_split(src: str, split: str) -> List[Tuple[str, str]]:
    """Return the (image, annotation) pairs listed in ``SRC/{split}.txt``."""
    list_file = osp.join(src, f'{split}.txt')
    pairs = []
    with open(list_file) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(
                    f'{list_file}:{lineno}: expected "IMAGE ANNOTATION", got '
                    f'{line.strip()!r}')
            pairs.append((_resolve(src, parts[0]), _resolve(src, parts[1])))
    return pairs


def convert_label(ann_path: str) -> np.ndarray:
    """Read a SegNet label map and map void (11) to 255."""
    label = cv2.imread(ann_path, cv2.IMREAD_UNCHANGED)
    if label is None:
        raise ValueError(f'cannot read annotation {ann_path!r} (missing or '
                         'not an image); re-download the SegNet CamVid folder')
    if label.ndim != 2:
        raise ValueError(f'annotation {ann_path!r} has shape {label.shape}; '
                         'CamVid labels are single-channel class ids')
    if label.max() > CAMVID_VOID:
        raise ValueError(
            f'annotation {ann_path!r} has label {int(label.max())}; CamVid '
            f'labels are 0..10 with {CAMVID_VOID} = void')
    out = label.astype(np.uint8)
    out[label == CAMVID_VOID] = IGNORE_INDEX
    return out


def convert_pair(img_path: str, ann_path: str, img_out: str,
                 ann_out: str) -> None:
    """Write one image (copied or re-encoded) and its mapped label."""
    if osp.splitext(img_path)[1].lower() == osp.splitext(img_out)[1].lower():
        shutil.copyfile(img_path, img_out)
    else:
        img = cv2.imread(img_path, cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f'cannot read image {img_path!r}')
        cv2.imwrite(img_out, img)
    cv2.imwrite(ann_out, convert_label(ann_path))


def convert_camvid(src: str,
                   out: str,
                   img_suffix: str = '.png',
                   splits: Sequence[str] = SPLITS) -> dict:
    """Convert every available split; return ``{split: num_images}``."""
    if not osp.isdir(src):
        raise FileNotFoundError(
            f'CamVid source folder {src!r} does not exist; pass the SegNet '
            '`CamVid/` folder (with train.txt, train/, trainannot/, ...)')
    counts = {}
    for split in splits:
        if not osp.exists(osp.join(src, f'{split}.txt')):
            print(f'[camvid] {split}: no {split}.txt in {src}, skipped')
            continue
        img_dir = osp.join(out, 'img_dir', split)
        ann_dir = osp.join(out, 'ann_dir', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        pairs = read_split(src, split)
        for img_path, ann_path in pairs:
            stem = osp.splitext(osp.basename(img_path))[0]
            convert_pair(img_path, ann_path,
                         osp.join(img_dir, stem + img_suffix),
                         osp.join(ann_dir, stem + '.png'))
        counts[split] = len(pairs)
        print(f'[camvid] {split}: {len(pairs)} images -> {img_dir}')
    if not counts:
        raise FileNotFoundError(
            f'no split list ({", ".join(s + ".txt" for s in splits)}) in '
            f'{src!r}; is this the SegNet CamVid folder?')
    return counts


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert SegNet-layout CamVid to mmseg layout')
    parser.add_argument('src', help='SegNet CamVid folder')
    parser.add_argument('-o', '--out-dir', default='data/camvid',
                        help='output folder (default: data/camvid)')
    parser.add_argument('--img-suffix', default='.png',
                        choices=('.png', '.jpg'),
                        help='image format written (default .png, what '
                        'CamVidDataset expects)')
    parser.add_argument('--splits', nargs='+', default=list(SPLITS),
                        choices=SPLITS)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    convert_camvid(args.src, args.out_dir, args.img_suffix, args.splits)
    return 0


if __name__ == '__main__':
    sys.exit(main())
