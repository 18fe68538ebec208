"""Tiny fake copies of the public datasets, in the exact on-disk layouts.

The GPU-scale configs (``configs/rss/*_voc12aug-*``, ``*_pascal-context-59-*``,
``*_cityscapes-*``, ``*_ade20k-*``) read VOC 2012 + SBD aug, Pascal Context
59, Cityscapes and ADE20K through mmseg's own dataset classes and pipelines.
None of those datasets can be downloaded in CI, so this module writes a few
small images per split in the same folders, with the same file suffixes,
image-set lists and label encodings that mmseg 1.2.2's datasets and
``tools/dataset_converters`` produce. A config then runs unchanged on them
with only ``data_root`` (and sizes) overridden, which checks the path that
otherwise first runs on a GPU cluster.

Labels are valid for each dataset (stored class range, 255 where the dataset
ignores pixels, label 0 where ``reduce_zero_label`` turns it into 255);
images are drawn from the label map (class colours, a gradient and noise), so
they have structure but are not meant to be learnable. Everything is
deterministic by ``seed``. The folders mirror mmseg's ``data/`` tree, so
``-o data`` gives each config its default ``data_root``.
"""
import os
import os.path as osp
import zlib
from typing import Callable, Dict, List, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

Size = Tuple[int, int]  # (height, width)

IGNORE_INDEX = 255
# data_root of each layout relative to the output folder: the same relative
# paths as the stock mmseg configs' ``data/...`` defaults.
DATA_ROOTS: Dict[str, str] = {
    'voc12aug': 'VOCdevkit/VOC2012',
    'context59': 'VOCdevkit/VOC2010',
    'cityscapes': 'cityscapes',
    'ade20k': 'ade/ADEChallengeData2016',
}
# Which mmseg dataset classes read each layout.
DATASET_TYPES: Dict[str, Tuple[str, ...]] = {
    'voc12aug': ('PascalVOCDataset', ),
    'context59': ('PascalContextDataset59', ),
    'cityscapes': ('CityscapesDataset', ),
    'ade20k': ('ADE20KDataset', ),
}


def voc_colormap(n: int = 256) -> np.ndarray:
    """The PASCAL VOC palette (bit-interleaved), ``(n, 3)`` uint8.

    Entry 255 is (224, 224, 192), the colour of VOC's ignored boundary band.
    """
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def draw_shapes(rng: np.random.Generator,
                label: np.ndarray,
                classes: Sequence[int],
                num_shapes: int = 4) -> np.ndarray:
    """Paint ``num_shapes`` ellipses and rectangles into ``label`` (in
    place), each with a label drawn from ``classes``; later shapes occlude
    earlier ones."""
    h, w = label.shape
    classes = list(classes)
    for _ in range(num_shapes):
        cls = int(classes[rng.integers(0, len(classes))])
        cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
        ry = int(rng.integers(max(2, h // 10), max(3, h // 3)))
        rx = int(rng.integers(max(2, w // 10), max(3, w // 3)))
        if rng.random() < 0.5:
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(label, (cx, cy), (rx, ry), angle, 0, 360, cls, -1)
        else:
            cv2.rectangle(label, (cx - rx, cy - ry), (cx + rx, cy + ry), cls,
                          -1)
    return label


def fake_label_map(rng: np.random.Generator,
                   size: Size,
                   classes: Sequence[int],
                   background: int,
                   num_shapes: int = 4) -> np.ndarray:
    """A uint8 label map: ``background`` with a few shapes of ``classes``."""
    label = np.full(size, background, dtype=np.uint8)
    return draw_shapes(rng, label, classes, num_shapes)


def fake_image(rng: np.random.Generator,
               label: np.ndarray,
               num_values: int = 256) -> np.ndarray:
    """A BGR uint8 image drawn from ``label``: one random colour per label
    value, a smooth gradient across the image and pixel noise."""
    h, w = label.shape
    colours = rng.integers(0, 256, size=(num_values, 3)).astype(np.float32)
    img = colours[label]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    direction = rng.uniform(-1, 1, size=2)
    gradient = 40 * (direction[0] * yy / h + direction[1] * xx / w)
    img += gradient[..., None]
    img += rng.normal(0, 12, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def boundary_band(label: np.ndarray, width: int = 1) -> np.ndarray:
    """Pixels within ``width`` of a change of label (VOC's ignored band)."""
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    return cv2.dilate(label, kernel) != cv2.erode(label, kernel)


def _rng(seed: int, layout: str, split: str,
         index: int) -> np.random.Generator:
    """One generator per image: an image depends only on its own position."""
    return np.random.default_rng(
        [seed, zlib.crc32(f'{layout}/{split}'.encode()), index])


def _write_list(path: str, names: Sequence[str]) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.writelines(f'{name}\n' for name in names)


def _save_index_png(path: str,
                    label: np.ndarray,
                    palette: np.ndarray = None) -> None:
    """A label PNG whose pixel values are the class indices: mode 'P' with
    ``palette`` (as VOC's SegmentationClass), else mode 'L' (as the mmseg
    converters write)."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    img = Image.fromarray(label)  # 'L'
    if palette is not None:
        img.putpalette(palette.flatten().tolist())  # 'L' -> 'P', same indices
    img.save(path)


def _save_image(path: str, img: np.ndarray, jpeg: bool) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if jpeg else []
    assert cv2.imwrite(path, img, params), path


def make_voc12aug(out_dir: str,
                  seed: int = 0,
                  num_train: int = 4,
                  num_val: int = 2,
                  size: Size = (96, 128)) -> str:
    """PASCAL VOC 2012 with the SBD augmentation, as
    ``configs/_base_/datasets/pascal_voc12_aug.py`` reads it.

    ``VOCdevkit/VOC2012/JPEGImages/<id>.jpg``; ``SegmentationClass/<id>.png``
    palette PNGs (indices 0..20, 255 on a one-pixel boundary band, as VOC);
    ``SegmentationClassAug/<id>.png`` index PNGs 0..20 without band (as
    mmseg's ``voc_aug.py`` converts SBD) for the SBD ids, which overlap VOC
    train; ``ImageSets/Segmentation/{train,val,aug,trainaug}.txt`` with
    ``aug`` = SBD minus VOC train and val, as that converter writes it.
    Returns the ``data_root`` (``.../VOCdevkit/VOC2012``).
    """
    root = osp.join(out_dir, DATA_ROOTS['voc12aug'])
    palette = voc_colormap()
    train = [f'2007_{i:06d}' for i in range(num_train)]
    val = [f'2008_{i:06d}' for i in range(num_val)]
    sbd_only = [f'2009_{i:06d}' for i in range(num_train)]
    for split, names in (('train', train), ('val', val), ('aug', sbd_only)):
        for i, name in enumerate(names):
            rng = _rng(seed, 'voc12aug', split, i)
            label = fake_label_map(rng, size, range(1, 21), background=0)
            _save_image(
                osp.join(root, 'JPEGImages', f'{name}.jpg'),
                fake_image(rng, label),
                jpeg=True)
            if split != 'aug':  # VOC's own annotation: palette, 255 band
                voc = label.copy()
                voc[boundary_band(label)] = IGNORE_INDEX
                _save_index_png(
                    osp.join(root, 'SegmentationClass', f'{name}.png'), voc,
                    palette)
            if split != 'val':  # SBD covers VOC train and its own ids
                _save_index_png(
                    osp.join(root, 'SegmentationClassAug', f'{name}.png'),
                    label)
    sets = osp.join(root, 'ImageSets', 'Segmentation')
    _write_list(osp.join(sets, 'train.txt'), train)
    _write_list(osp.join(sets, 'val.txt'), val)
    _write_list(osp.join(sets, 'aug.txt'), sbd_only)
    _write_list(osp.join(sets, 'trainaug.txt'), train + sbd_only)
    return root


def make_context59(out_dir: str,
                   seed: int = 0,
                   num_train: int = 4,
                   num_val: int = 2,
                   size: Size = (96, 128)) -> str:
    """PASCAL Context (59 classes), as ``pascal_context_59.py`` reads it.

    ``VOCdevkit/VOC2010/JPEGImages/<id>.jpg``,
    ``SegmentationClassContext/<id>.png`` index PNGs with values 0..59 as
    mmseg's ``pascal_context.py`` converter writes them (0 = the unlabelled
    background, which ``reduce_zero_label`` turns into 255, 1..59 the 59
    classes), ``ImageSets/SegmentationContext/{train,val}.txt``.
    Returns the ``data_root`` (``.../VOCdevkit/VOC2010``).
    """
    root = osp.join(out_dir, DATA_ROOTS['context59'])
    splits = {
        'train': [f'2008_{i:06d}' for i in range(num_train)],
        'val': [f'2010_{i:06d}' for i in range(num_val)],
    }
    for split, names in splits.items():
        for i, name in enumerate(names):
            rng = _rng(seed, 'context59', split, i)
            # a labelled scene (a 'stuff' class as background) with
            # unlabelled (0) regions
            label = fake_label_map(
                rng, size, range(1, 60), background=int(rng.integers(1, 60)))
            draw_shapes(rng, label, [0], num_shapes=1)  # unlabelled region
            _save_image(
                osp.join(root, 'JPEGImages', f'{name}.jpg'),
                fake_image(rng, label),
                jpeg=True)
            _save_index_png(
                osp.join(root, 'SegmentationClassContext', f'{name}.png'),
                label)
        _write_list(
            osp.join(root, 'ImageSets', 'SegmentationContext', f'{split}.txt'),
            names)
    return root


CITIES = {'train': ('aachen', 'bochum'), 'val': ('frankfurt', )}


def make_cityscapes(out_dir: str,
                    seed: int = 0,
                    num_train: int = 4,
                    num_val: int = 2,
                    size: Size = (64, 128)) -> str:
    """Cityscapes fine annotations, as ``cityscapes.py`` reads them.

    ``leftImg8bit/{train,val}/<city>/<stem>_leftImg8bit.png`` and
    ``gtFine/{train,val}/<city>/<stem>_gtFine_labelTrainIds.png`` with
    ``<stem>`` = ``<city>_<seq>_<frame>``
    (train ids 0..18, 255 for void, e.g. the ego vehicle at the bottom), the
    files mmseg's ``cityscapes.py`` converter adds to a Cityscapes download.
    The images are listed by scanning the folders (no image-set file).
    Returns the ``data_root`` (``.../cityscapes``).
    """
    root = osp.join(out_dir, DATA_ROOTS['cityscapes'])
    for split, num in (('train', num_train), ('val', num_val)):
        cities = CITIES[split]
        for i in range(num):
            city = cities[i % len(cities)]
            stem = f'{city}_{i:06d}_{19 + i:06d}'
            rng = _rng(seed, 'cityscapes', split, i)
            h, w = size
            # a street scene: sky (10) above, road (0) below, objects and
            # stuff of any train id on top
            label = np.zeros(size, dtype=np.uint8)
            label[:h // 3] = 10
            draw_shapes(rng, label, range(0, 19), num_shapes=6)
            label[-max(1, h // 8):] = IGNORE_INDEX  # ego vehicle
            _save_image(
                osp.join(root, 'leftImg8bit', split, city,
                         f'{stem}_leftImg8bit.png'),
                fake_image(rng, label),
                jpeg=False)
            _save_index_png(
                osp.join(root, 'gtFine', split, city,
                         f'{stem}_gtFine_labelTrainIds.png'), label)
    return root


def make_ade20k(out_dir: str,
                seed: int = 0,
                num_train: int = 4,
                num_val: int = 2,
                size: Size = (96, 128)) -> str:
    """ADE20K (SceneParsing, ADEChallengeData2016), as ``ade20k.py`` reads it.

    ``images/{training,validation}/ADE_{train,val}_<8 digits>.jpg`` and
    ``annotations/{training,validation}/....png`` index PNGs with values
    0..150 (0 = 'other', which ``reduce_zero_label`` turns into 255; 1..150
    the classes). The images are listed by scanning the folders.
    Returns the ``data_root`` (``.../ade/ADEChallengeData2016``).
    """
    root = osp.join(out_dir, DATA_ROOTS['ade20k'])
    for split, tag, num in (('training', 'train', num_train),
                            ('validation', 'val', num_val)):
        for i in range(num):
            name = f'ADE_{tag}_{i + 1:08d}'
            rng = _rng(seed, 'ade20k', split, i)
            label = fake_label_map(
                rng, size, range(1, 151), background=int(rng.integers(1, 151)))
            draw_shapes(rng, label, [0], num_shapes=1)  # an 'other' region
            _save_image(
                osp.join(root, 'images', split, f'{name}.jpg'),
                fake_image(rng, label),
                jpeg=True)
            _save_index_png(
                osp.join(root, 'annotations', split, f'{name}.png'), label)
    return root


LAYOUTS: Dict[str, Callable[..., str]] = {
    'voc12aug': make_voc12aug,
    'context59': make_context59,
    'cityscapes': make_cityscapes,
    'ade20k': make_ade20k,
}


def make_fake_dataset(name: str, out_dir: str, seed: int = 0, **kwargs) -> str:
    """Write the fake dataset ``name`` (a key of ``LAYOUTS``) under
    ``out_dir``; returns the ``data_root`` to pass to its configs."""
    if name not in LAYOUTS:
        raise KeyError(f'unknown fake dataset {name!r}; '
                       f'choose from {sorted(LAYOUTS)}')
    return LAYOUTS[name](out_dir, seed=seed, **kwargs)


def layout_for_dataset_type(dataset_type: str) -> str:
    """The layout that an mmseg dataset class (``'CityscapesDataset'``, ...)
    reads."""
    for name, types in DATASET_TYPES.items():
        if dataset_type in types:
            return name
    raise KeyError(f'no fake layout for dataset type {dataset_type!r}')


def make_fake_datasets(out_dir: str,
                       names: Sequence[str] = tuple(LAYOUTS),
                       seed: int = 0) -> Dict[str, str]:
    """Write several fake datasets; returns ``{name: data_root}``."""
    return {name: make_fake_dataset(name, out_dir, seed) for name in names}


__all__: List[str] = [
    'DATA_ROOTS', 'LAYOUTS', 'make_fake_dataset', 'make_fake_datasets',
    'make_voc12aug', 'make_context59', 'make_cityscapes', 'make_ade20k',
    'layout_for_dataset_type', 'voc_colormap'
]
