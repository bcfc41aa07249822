"""Image-folder datasets: ``imagefolder:PATH`` and TinyImageNet, decoded once and cached as uint8.

``imagefolder:PATH`` expects ``PATH/train/<class>/*.png|jpg|...`` and ``PATH/test/<class>/...``
(or ``PATH/val/<class>/...`` when there is no ``test``); the latter is the original test split,
halved per class into validation and test. Classes are the sorted folder names of
``PATH/train``; files are taken in sorted name order ("dataset order", as torchvision's
``ImageFolder``). Images in sub-folders of a class folder belong to that class and are read
too (in sorted path order, as ``ImageFolder`` does); hidden files and folders (names starting
with ``.``, e.g. macOS ``._*`` files or the ``.drop_cache``) are skipped. A classifier needs at
least two class folders. All images must share one size; the colour mode (grayscale or RGB)
is that of the first training image, and other images are converted to it.

Decoding runs once on a thread pool (Pillow releases the GIL while decoding), in chunks that
are each checked on their own: a file that cannot be read or decoded, one over Pillow's
decompression-bomb limit ``Image.MAX_IMAGE_PIXELS`` (checked from its header before decoding;
Pillow's warning is made an error) or of another size is reported by name, and the array for
all images is allocated only after every image passed (an array larger than the machine's
memory is refused up front). The result is cached by :mod:`drop_core.data.cache`, so later
loads read one uint8 array per split.
Normalisation statistics come from the train split; augmentation is flip + shifts of at most
``H // 8`` px (4 px at 32x32, the paper's setting), since natural images are assumed.
"""
from __future__ import annotations

import logging
import os
import struct
import warnings
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from drop_core.data import cache
from drop_core.data._registry import DATASETS
from drop_core.data.base import Dataset
from drop_core.data.build import assemble
from drop_core.errors import DropError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
GRAYSCALE_MODES = frozenset({"1", "L", "I", "I;16", "F"})
DECODE_CHUNK = 512          # files per thread-pool task
# What Pillow raises on a damaged file (UnidentifiedImageError is an OSError; SyntaxError: "broken PNG file").
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)
log = logging.getLogger("drop_core.data")

# An image over Image.MAX_IMAGE_PIXELS is refused, not decoded with a warning (Pillow only errors at twice
# the limit). decode_images also checks the limit itself, so this filter is a second guard.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)

TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINYIMAGENET_MEAN = (0.480, 0.448, 0.397)      # authors' code (docs/drop-method.md)
TINYIMAGENET_STD = (0.276, 0.269, 0.282)


def _layout_hint(path: Path) -> str:
    return (
        f"Expected {path}/train/<class>/*.png (or .jpg) and {path}/test/<class>/*.png "
        f"(or {path}/val/<class>/...)"
    )


def _image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (sub-folders included, hidden entries skipped), in sorted path order."""
    found = []
    for top, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        keep = sorted(n for n in names if not n.startswith(".") and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS)
        found.append((top, keep))
    return [Path(top) / n for top, keep in sorted(found) for n in keep]


def scan_class_folders(split_dir: Path,
                       classes: Sequence[str] | None = None) -> tuple[list[str], list[Path], np.ndarray]:
    """(classes, files, labels) for ``split_dir/<class>/<image>``; ``classes`` fixes the label order if given.

    A class folder of ``split_dir`` that is not in ``classes`` is a DropError; a class of
    ``classes`` without a folder simply has no samples here (the caller checks counts).
    """
    found = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is None:
        classes = found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DropError(
            f"'{split_dir}' has class folder(s) {', '.join(map(repr, unknown))} that the train split does not have."
        )
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        folder = split_dir / name
        members = _image_files(folder) if folder.is_dir() else []
        files += members
        labels += [label] * len(members)
    return list(classes), files, np.asarray(labels, dtype=np.int64)


def _bomb(path: Path, size: tuple[int, int] | None, err: Exception | None = None) -> DropError:
    what = (f"{size[0]}x{size[1]} = {size[0] * size[1]:,} pixels, over Pillow's limit Image.MAX_IMAGE_PIXELS of "
            f"{Image.MAX_IMAGE_PIXELS:,}" if size else str(err).rstrip("."))
    return DropError(f"Image file '{path}' is too large ({what}): it may be a decompression bomb. "
                     f"Remove or shrink it and retry.")


def _file_error(path: Path, err: Exception) -> DropError:
    if isinstance(err, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return _bomb(path, None, err)
    if isinstance(err, OSError) and err.errno is not None:       # the file itself cannot be read
        return DropError(f"Cannot read image file '{path}' ({err.strerror}). Fix its permissions, or remove it, "
                         f"and retry.")
    return DropError(f"Cannot decode image file '{path}' ({err}). Remove or replace it and retry.")


def _open_image(path: Path, mode: str | None) -> Image.Image:
    """The decoded image at ``path`` in ``mode`` (None: "L" or "RGB" as the file is); DropError naming a bad file."""
    try:
        with Image.open(path) as img:
            if Image.MAX_IMAGE_PIXELS and img.size[0] * img.size[1] > Image.MAX_IMAGE_PIXELS:
                raise _bomb(path, img.size)           # checked from the header, before any pixel is decoded
            img.load()
            if mode is None:
                mode = "L" if img.mode in GRAYSCALE_MODES else "RGB"
            return img.convert(mode) if img.mode != mode else img.copy()
    except (*DECODE_ERRORS, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise _file_error(path, err) from None


def _memory_bytes() -> int | None:
    """Physical memory of this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def decode_images(files: Sequence[Path], *, mode: str | None = None, threads: int | None = None) -> np.ndarray:
    """Decode ``files`` into one uint8 (N, C, H, W) array (C = 1 for mode "L", 3 for "RGB").

    The first image fixes the size and, unless ``mode`` is given, the colour mode. A file that
    cannot be read or decoded, one over the pixel limit, or one whose size differs is a DropError
    naming it, and so is an array that would not fit in this machine's memory (checked first).
    Chunks of images are decoded and checked on their own, and the full array is allocated
    only once every image has passed, then filled chunk by chunk (freeing each), so memory peaks
    near one copy of the data.
    """
    if not files:
        raise ValueError("decode_images needs at least one file")
    first = _open_image(files[0], mode)
    mode, (width, height) = first.mode, first.size
    channels = 1 if mode == "L" else 3
    shape = (len(files), channels, height, width)
    need, have = int(np.prod(shape, dtype=np.int64)), _memory_bytes()
    folder = files[0].parent.parent
    if have is not None and need > have:
        raise DropError(f"The {len(files):,} images of '{folder}' would take {need / 2**30:.1f} GiB decoded, "
                        f"more than this machine's {have / 2**30:.1f} GiB; use fewer or smaller images.")

    def work(start: int) -> np.ndarray:
        stop = min(start + DECODE_CHUNK, len(files))
        chunk = np.empty((stop - start, channels, height, width), dtype=np.uint8)
        for i in range(start, stop):
            img = _open_image(files[i], mode)
            if img.size != (width, height):
                raise DropError(
                    f"Image '{files[i]}' is {img.size[0]}x{img.size[1]} but '{files[0]}' is {width}x{height}; "
                    f"all images of a dataset must share one size (resize them first)."
                )
            pixels = np.asarray(img)
            chunk[i - start] = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
        return chunk

    pool = ThreadPoolExecutor(max_workers=threads or min(8, os.cpu_count() or 1))
    try:
        chunks = [future.result() for future in [pool.submit(work, s) for s in range(0, len(files), DECODE_CHUNK)]]
    finally:
        pool.shutdown(cancel_futures=True)       # on the first bad file, skip the chunks not yet started
    try:
        out = np.empty(shape, dtype=np.uint8)
    except MemoryError:
        raise DropError(f"Out of memory allocating {need / 2**30:.1f} GiB for the {len(files):,} images of "
                        f"'{folder}'; use fewer or smaller images.") from None
    for k in range(len(chunks)):
        out[k * DECODE_CHUNK:(k + 1) * DECODE_CHUNK] = chunks[k]
        chunks[k] = None                          # free as we go: pages of ``out`` are committed as written
    return out


def cached_decode(data_root: Path, split: str, classes: Sequence[str], files: Sequence[Path],
                  labels: np.ndarray, mode: str | None = None) -> np.ndarray:
    """``decode_images(files, mode=mode)``, read from the decode cache when the file listing is unchanged."""
    prefix = cache.entry_prefix(data_root, split, mode or "auto")
    path = cache.cache_dir(data_root) / f"{prefix}-{cache.fingerprint(data_root, files, classes, labels)}.npz"
    hit = cache.load(path)
    if hit is not None and hit[0].shape[0] == len(files) and np.array_equal(hit[1], labels):
        return hit[0]
    images = decode_images(files, mode=mode)
    try:
        cache.save(path, images, labels)
        cache.prune(path.parent, prefix, keep=path)
    except OSError as err:    # an unwritable cache costs speed on the next load, never correctness
        log.warning("Could not write the decode cache '%s' (%s); the next load decodes the images again.",
                    path, err.strerror or err)
    return images


def load_image_folder(path: str, *, name: str | None = None, mean=None, std=None) -> Dataset:
    """Load ``PATH/train`` and ``PATH/test`` (or ``PATH/val``) class folders as a Dataset (see module docstring)."""
    root = Path(path).expanduser().resolve()
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise DropError(f"No image folder at '{root}' (missing '{train_dir}'). {_layout_hint(root)}.")
    test_dir = next((root / s for s in ("test", "val") if (root / s).is_dir()), None)
    if test_dir is None:
        raise DropError(f"'{root}' has no 'test' or 'val' folder. {_layout_hint(root)}.")
    classes, train_files, y_train = scan_class_folders(train_dir)
    if not classes:
        raise DropError(f"'{train_dir}' has no class folders. {_layout_hint(root)}.")
    if len(classes) == 1:
        raise DropError(f"'{train_dir}' has one class folder ({classes[0]!r}); a classifier needs at least two "
                        f"classes. Add another class folder (train/<class>/ and test/<class>/).")
    for k, count in enumerate(np.bincount(y_train, minlength=len(classes))):
        if count == 0:
            raise DropError(f"Class folder '{train_dir / classes[k]}' has no images "
                            f"({', '.join(sorted(IMAGE_EXTENSIONS))}).")
    _, test_files, y_test = scan_class_folders(test_dir, classes)
    return _assemble_folders(name or f"imagefolder:{root}", root, classes, train_files, y_train, test_files, y_test,
                             test_dir.name, mean, std)


def _assemble_folders(name: str, root: Path, classes: list[str], train_files: list[Path], y_train: np.ndarray,
                      test_files: list[Path], y_test: np.ndarray, test_split: str, mean, std,
                      mode: str | None = None) -> Dataset:
    """Decode (or read cached) train and test images and assemble the Dataset; test follows train's colour mode."""
    x_train = cached_decode(root, "train", classes, train_files, y_train, mode)
    test_mode = "L" if x_train.shape[1] == 1 else "RGB"
    x_test = cached_decode(root, test_split, classes, test_files, y_test, test_mode) if test_files else x_train[:0]
    if x_test.shape[2:] != x_train.shape[2:]:
        raise DropError(
            f"Test images of '{root}' are {x_test.shape[3]}x{x_test.shape[2]} but train images "
            f"{x_train.shape[3]}x{x_train.shape[2]}; all images must share one size (resize them first)."
        )
    return assemble(
        name, classes, x_train, y_train, x_test, y_test,
        flip=True, max_shift=max(1, x_train.shape[2] // 8), mean=mean, std=std, source=f"image folder {root}",
    )


@DATASETS.register("imagefolder",
                   "any image-folder tree; use imagefolder:PATH with PATH/train/<class>/ and PATH/test/<class>/")
def load_imagefolder(root: str | None, download: bool, seed: int) -> Dataset:
    """``imagefolder:PATH`` (``load_dataset`` passes PATH as ``root``); nothing can be downloaded."""
    if not root:
        raise DropError("The imagefolder dataset needs a path: use --dataset imagefolder:PATH. "
                        f"{_layout_hint(Path('PATH'))}.")
    if download:
        raise DropError(f"--download does not apply to an image folder ('{root}'); the images must already be there.")
    return load_image_folder(root)


def _tinyimagenet_val(val_dir: Path, classes: list[str]) -> tuple[list[Path], np.ndarray]:
    """The official val split: ``val/images/*.JPEG`` labelled by ``val/val_annotations.txt`` (sorted by file name)."""
    notes = val_dir / "val_annotations.txt"
    if not notes.is_file():
        _, files, labels = scan_class_folders(val_dir, classes)       # already reorganised into class folders
        return files, labels
    index = {wnid: k for k, wnid in enumerate(classes)}
    rows = sorted(line.split("\t")[:2] for line in notes.read_text().splitlines() if line.strip())
    unknown = sorted({wnid for _, wnid in rows} - set(index))
    if unknown:
        raise DropError(f"'{notes}' names class(es) {', '.join(unknown[:5])} that '{val_dir.parent / 'train'}' lacks.")
    return [val_dir / "images" / f for f, _ in rows], np.asarray([index[w] for _, w in rows], dtype=np.int64)


@DATASETS.register("tinyimagenet", "TinyImageNet-200, 3x64x64, 200 classes, 100k train / 5k val / 5k test")
def load_tinyimagenet(root: str | None, download: bool, seed: int) -> Dataset:
    """TinyImageNet from ``ROOT/tiny-imagenet-200`` (the official zip's layout), with the authors' normalisation.

    The official val split (50 per class) is the original test split: 25 per class go to
    validation and 25 to test, as in the paper. ``seed`` is ignored.
    """
    from drop_core.data.vision import data_root

    base = Path(data_root(root))
    folder = base / "tiny-imagenet-200"
    if download and not folder.is_dir():
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            download_and_extract_archive(TINYIMAGENET_URL, str(base))
        except OSError as err:
            raise DropError(f"Downloading TinyImageNet from {TINYIMAGENET_URL} into '{base}' failed: {err}.") from None
    train_dir = folder / "train"
    if not train_dir.is_dir():
        raise DropError(
            f"TinyImageNet was not found at '{folder}': expected train/<wnid>/images/*.JPEG and "
            f"val/images/*.JPEG with val/val_annotations.txt. Rerun with --download, or unzip "
            f"{TINYIMAGENET_URL} into '{base}' (or pass --data-root)."
        )
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    train_files: list[Path] = []
    train_labels: list[int] = []
    for k, wnid in enumerate(classes):
        images = train_dir / wnid / "images"
        members = _image_files(images if images.is_dir() else train_dir / wnid)
        train_files += members
        train_labels += [k] * len(members)
    y_train = np.asarray(train_labels, dtype=np.int64)
    test_files, y_test = _tinyimagenet_val(folder / "val", classes)
    words = _wnid_words(folder / "words.txt")
    dataset = _assemble_folders("tinyimagenet", folder, classes, train_files, y_train, test_files, y_test, "val",
                                TINYIMAGENET_MEAN, TINYIMAGENET_STD, mode="RGB")   # a few JPEGs are grayscale
    dataset.classes = [words.get(w, w) for w in classes]
    return dataset


def _wnid_words(path: Path) -> dict[str, str]:
    """wnid -> first human-readable name from ``words.txt`` (empty if the file is absent)."""
    if not path.is_file():
        return {}
    pairs = (line.split("\t", 1) for line in path.read_text().splitlines() if "\t" in line)
    return {wnid: text.split(",")[0].strip() for wnid, text in pairs}
