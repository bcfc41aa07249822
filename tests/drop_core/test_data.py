"""Dataset loaders on tiny generated data: splits, embedded sets, torchvision formats, image folders, errors."""
from __future__ import annotations

import os
import pickle
import struct

import numpy as np
import pytest
import scipy.io
import torch
import torchvision.datasets.cifar
import torchvision.datasets.svhn
from PIL import Image

from drop_core.data import DATASETS, folders, load_dataset
from drop_core.data.build import channel_stats
from drop_core.data.embedded import gaussian_spreads
from drop_core.data.splits import stratified_split, validation_split
from drop_core.data.vision import SOURCES
from drop_core.errors import DropError

CLASSES = ["cat", "dog", "eel"]


# ---------------------------------------------------------------- splits

def test_validation_split_is_first_half_of_each_class_in_dataset_order():
    labels = np.array([2, 0, 0, 1, 2, 0, 1, 2, 0, 2, 1])      # class sizes 4, 3, 4
    val, test = validation_split(labels, ["a", "b", "c"])
    assert val.tolist() == [0, 1, 2, 3, 4]                       # a: 1,2 | b: 3 | c: 0,4
    assert test.tolist() == [5, 6, 7, 8, 9, 10]
    assert np.bincount(labels[val]).tolist() == [2, 1, 2]


@pytest.mark.parametrize("labels, count", [([0, 0, 1, 1], 0), ([0, 0, 1, 2, 2], 1)])
def test_class_without_a_test_sample_for_each_half_is_an_error(labels, count):
    with pytest.raises(DropError) as err:
        validation_split(np.array(labels), ["a", "b", "c"])
    name = "c" if count == 0 else "b"
    assert str(err.value) == (
        f"Class '{name}' has {count} test sample(s); every class needs at least 2 in the test split."
    )


def test_stratified_split_is_deterministic_and_stratified():
    labels = np.repeat(np.arange(3), [10, 20, 30])
    train, test = stratified_split(labels, 0.4, seed=0)
    again = stratified_split(labels, 0.4, seed=0)
    assert np.array_equal(test, again[1]) and np.array_equal(train, again[0])
    assert np.bincount(labels[test]).tolist() == [4, 8, 12]
    assert np.intersect1d(train, test).size == 0 and train.size + test.size == labels.size


def test_channel_stats_match_numpy():
    images = np.random.default_rng(0).integers(0, 256, (50, 3, 4, 5), dtype=np.uint8)
    mean, std = channel_stats(images, chunk=7)
    pixels = images.transpose(1, 0, 2, 3).reshape(3, -1) / 255.0
    np.testing.assert_allclose(mean, pixels.mean(1))
    np.testing.assert_allclose(std, pixels.std(1))


# ---------------------------------------------------------------- embedded datasets

def test_digits_are_uint8_images_with_disjoint_balanced_splits():
    data = load_dataset("digits")
    assert data.x_train.dtype == torch.uint8 and data.input_shape == (1, 8, 8) and data.is_image
    assert int(data.x_train.max()) == 255 and not data.flip
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 1797
    assert abs(len(data.x_val) - len(data.x_test)) <= data.num_classes
    counts = np.bincount(data.y_val.numpy(), minlength=10)
    assert counts.min() >= 30
    mean, std = channel_stats(data.x_train.numpy())
    np.testing.assert_allclose(data.mean.numpy(), mean, rtol=1e-6)
    np.testing.assert_allclose(data.std.numpy(), std, rtol=1e-6)
    assert torch.equal(load_dataset("digits", seed=5).y_test, data.y_test)      # split fixed for all seeds


def test_gaussians_are_seeded_float32_with_spread_growing_by_class():
    data = load_dataset("gaussians", seed=3)
    assert data.x_train.dtype == torch.float32 and not data.is_image and data.max_shift == 0
    assert torch.equal(load_dataset("gaussians", seed=3).x_train, data.x_train)
    assert not torch.equal(load_dataset("gaussians", seed=4).x_train, data.x_train)
    x, y = data.x_train.numpy(), data.y_train.numpy()
    spread = np.array([x[y == k].std(axis=0).mean() for k in range(data.num_classes)])
    assert np.all(np.diff(spread) > 0)
    np.testing.assert_allclose(spread, gaussian_spreads(), rtol=0.1)
    np.testing.assert_allclose(data.mean.numpy(), x.mean(0), atol=1e-5)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(DropError) as err:
        load_dataset("imagenet")
    assert str(err.value) == f"Unknown dataset 'imagenet'. Valid datasets: {', '.join(sorted(DATASETS.names()))}."


# ---------------------------------------------------------------- image folders

def _pixels(seed: int, size=(8, 8), channels=3) -> np.ndarray:
    shape = (size[1], size[0], channels) if channels == 3 else (size[1], size[0])
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _write_folder(root, split: str, per_class: dict[str, int], fmt="png", size=(8, 8), channels=3) -> dict:
    """Write per_class[c] images to root/split/c/NNN.fmt; return {path: pixels} for the lossless PNGs."""
    written = {}
    for k, name in enumerate(per_class):
        folder = root / split / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class[name]):
            pixels = _pixels(1000 * k + i + (0 if split == "train" else 500), size, channels)
            path = folder / f"{i:03d}.{fmt}"
            Image.fromarray(pixels).save(path)
            written[path] = pixels
    return written


def test_image_folder_loads_pixels_labels_and_paper_split(tmp_path):
    train = _write_folder(tmp_path, "train", {"cat": 4, "dog": 5, "eel": 4})
    test = _write_folder(tmp_path, "test", {"cat": 3, "dog": 4, "eel": 2})
    data = load_dataset(f"imagefolder:{tmp_path}")
    assert data.classes == CLASSES and data.input_shape == (3, 8, 8) and data.x_train.dtype == torch.uint8
    assert data.y_train.tolist() == [0] * 4 + [1] * 5 + [2] * 4
    first_train = next(iter(train.values()))
    assert np.array_equal(data.x_train[0].numpy(), first_train.transpose(2, 0, 1))
    # validation = first floor(n/2) test images of each class in file-name order; test = the rest
    test_images = list(test.values())
    assert data.y_val.tolist() == [0, 1, 1, 2] and data.y_test.tolist() == [0, 0, 1, 1, 2]
    assert np.array_equal(data.x_val[0].numpy(), test_images[0].transpose(2, 0, 1))
    assert np.array_equal(data.x_test[0].numpy(), test_images[1].transpose(2, 0, 1))
    assert data.flip and data.max_shift == 1
    np.testing.assert_allclose(data.mean.numpy(), channel_stats(data.x_train.numpy())[0], rtol=1e-6)


def test_image_folder_is_decoded_once_then_read_from_cache(tmp_path, monkeypatch):
    _write_folder(tmp_path, "train", {"cat": 2, "dog": 2}, fmt="jpg")
    _write_folder(tmp_path, "val", {"cat": 2, "dog": 2}, fmt="jpg")
    calls = []
    real_decode = folders.decode_images
    monkeypatch.setattr(folders, "decode_images", lambda files, **kw: calls.append(len(files)) or real_decode(files))
    first = load_dataset(f"imagefolder:{tmp_path}")
    assert calls == [4, 4] and len(list((tmp_path / ".drop_cache").glob("*.npz"))) == 2
    second = load_dataset(f"imagefolder:{tmp_path}")
    assert calls == [4, 4] and torch.equal(first.x_train, second.x_train) and torch.equal(first.x_val, second.x_val)
    Image.fromarray(_pixels(99)).save(tmp_path / "train" / "dog" / "extra.jpg")     # a changed listing re-decodes
    assert len(load_dataset(f"imagefolder:{tmp_path}").x_train) == 5 and calls[-1] == 5
    assert len(list((tmp_path / ".drop_cache").glob("*.npz"))) == 2                  # the stale entry is gone


def test_grayscale_folder_gives_one_channel(tmp_path):
    _write_folder(tmp_path, "train", {"a": 2, "b": 2}, channels=1)
    _write_folder(tmp_path, "test", {"a": 2, "b": 2}, channels=1)
    assert load_dataset(f"imagefolder:{tmp_path}").input_shape == (1, 8, 8)


def test_corrupt_image_is_reported_by_path(tmp_path):
    _write_folder(tmp_path, "train", {"a": 2, "b": 2})
    _write_folder(tmp_path, "test", {"a": 2, "b": 2})
    bad = tmp_path / "train" / "b" / "001.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DropError) as err:
        load_dataset(f"imagefolder:{tmp_path}")
    assert str(err.value).startswith(f"Cannot decode image file '{bad}' (")
    assert str(err.value).endswith("). Remove or replace it and retry.")


def test_image_of_another_size_is_reported_by_path(tmp_path):
    _write_folder(tmp_path, "train", {"a": 2, "b": 2})
    _write_folder(tmp_path, "test", {"a": 2, "b": 2})
    odd = tmp_path / "test" / "b" / "001.png"
    Image.fromarray(_pixels(7, size=(9, 8))).save(odd)
    with pytest.raises(DropError) as err:
        load_dataset(f"imagefolder:{tmp_path}")
    assert str(err.value) == (
        f"Image '{odd}' is 9x8 but '{tmp_path / 'test' / 'a' / '000.png'}' is 8x8; "
        f"all images of a dataset must share one size (resize them first)."
    )


def test_test_images_of_another_size_than_train_are_an_error(tmp_path):
    _write_folder(tmp_path, "train", {"a": 2, "b": 2})
    _write_folder(tmp_path, "test", {"a": 2, "b": 2}, size=(9, 9))
    with pytest.raises(DropError) as err:
        load_dataset(f"imagefolder:{tmp_path}")
    assert str(err.value) == (
        f"Test images of '{tmp_path}' are 9x9 but train images 8x8; all images must share one size (resize them first)."
    )


def test_test_images_follow_the_train_colour_mode(tmp_path):
    _write_folder(tmp_path, "train", {"a": 2, "b": 2})
    written = _write_folder(tmp_path, "test", {"a": 2, "b": 2}, channels=1)
    data = load_dataset(f"imagefolder:{tmp_path}")
    assert data.x_val.shape[1] == 3
    assert np.array_equal(data.x_val[0, 1].numpy(), next(iter(written.values())))


def test_class_with_no_test_images_is_an_error(tmp_path):
    _write_folder(tmp_path, "train", {"a": 2, "b": 2})
    _write_folder(tmp_path, "test", {"a": 2})
    with pytest.raises(DropError) as err:
        load_dataset(f"imagefolder:{tmp_path}")
    assert str(err.value) == "Class 'b' has 0 test sample(s); every class needs at least 2 in the test split."


def test_missing_image_folder_names_where_it_looked_and_the_layout(tmp_path):
    with pytest.raises(DropError) as err:
        load_dataset(f"imagefolder:{tmp_path / 'nope'}")
    root = tmp_path / "nope"
    assert str(err.value) == (
        f"No image folder at '{root}' (missing '{root / 'train'}'). Expected {root}/train/<class>/*.png (or .jpg) "
        f"and {root}/test/<class>/*.png (or {root}/val/<class>/...)."
    )


def test_imagefolder_without_path_is_an_error():
    with pytest.raises(DropError) as err:
        load_dataset("imagefolder:")
    assert str(err.value) == (
        "The dataset 'imagefolder:PATH' needs a path after the colon, e.g. imagefolder:/data/cifar10."
    )


def test_tinyimagenet_official_layout(tmp_path):
    base = tmp_path / "tiny-imagenet-200"
    wnids = ["n01", "n02"]
    for k, wnid in enumerate(wnids):
        folder = base / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(_pixels(10 * k + i)).save(folder / f"{wnid}_{i}.JPEG")
    (base / "val" / "images").mkdir(parents=True)
    rows = []
    for i, wnid in enumerate(["n02", "n01", "n01", "n02"]):
        Image.fromarray(_pixels(100 + i)).save(base / "val" / "images" / f"val_{i}.JPEG")
        rows.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t8\t8")
    (base / "val" / "val_annotations.txt").write_text("\n".join(rows) + "\n")
    (base / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\ttree frog\n")
    data = load_dataset("tinyimagenet", root=str(tmp_path))
    assert data.classes == ["goldfish", "tree frog"] and data.input_shape == (3, 8, 8)
    assert len(data.x_train) == 6 and data.y_val.tolist() == [1, 0] and data.y_test.tolist() == [0, 1]
    assert data.mean.tolist() == pytest.approx([0.480, 0.448, 0.397])


def test_tinyimagenet_missing_says_how_to_get_it(tmp_path):
    with pytest.raises(DropError) as err:
        load_dataset("tinyimagenet", root=str(tmp_path))
    assert str(err.value) == (
        f"TinyImageNet was not found at '{tmp_path / 'tiny-imagenet-200'}': expected train/<wnid>/images/*.JPEG "
        f"and val/images/*.JPEG with val/val_annotations.txt. Rerun with --download, or unzip "
        f"http://cs231n.stanford.edu/tiny-imagenet-200.zip into '{tmp_path}' (or pass --data-root)."
    )


# ---------------------------------------------------------------- torchvision formats

def _write_idx(path, array: np.ndarray) -> None:
    """An IDX file as MNIST ships it: magic (0, 0, 0x08 = uint8, ndim), big-endian int32 sizes, raw bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">i", s) for s in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_format_is_read_by_torchvision(tmp_path, name, folder):
    rng = np.random.default_rng(0)
    raw = tmp_path / folder / "raw"
    train_y, test_y = np.arange(40) % 10, np.repeat(np.arange(10), 2)
    train_x = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    test_x = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    _write_idx(raw / "train-images-idx3-ubyte", train_x)
    _write_idx(raw / "train-labels-idx1-ubyte", train_y)
    _write_idx(raw / "t10k-images-idx3-ubyte", test_x)
    _write_idx(raw / "t10k-labels-idx1-ubyte", test_y)
    data = load_dataset(name, root=str(tmp_path))
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10 and data.x_train.dtype == torch.uint8
    assert np.array_equal(data.x_train[:, 0].numpy(), train_x) and data.y_train.tolist() == train_y.tolist()
    assert np.array_equal(data.x_val[:, 0].numpy(), test_x[0::2])
    assert np.array_equal(data.x_test[:, 0].numpy(), test_x[1::2])
    assert data.flip == (name == "fashion_mnist")
    np.testing.assert_allclose(data.mean.numpy(), [train_x.mean() / 255], rtol=1e-6)


def _write_cifar10(base) -> tuple[np.ndarray, list[int]]:
    folder = base / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, rows in [(f"data_batch_{i}", 10) for i in range(1, 6)] + [("test_batch", 20)]:
        data = rng.integers(0, 256, (rows, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as out:
            pickle.dump({"data": data, "labels": [i % 10 for i in range(rows)]}, out)
    with open(folder / "batches.meta", "wb") as out:
        pickle.dump({"label_names": [f"class{k}" for k in range(10)]}, out)
    with open(folder / "data_batch_1", "rb") as f:
        first = pickle.load(f)
    return first["data"], first["labels"]


def test_cifar10_files_that_fail_the_checksum_are_reported(tmp_path):
    _write_cifar10(tmp_path)
    with pytest.raises(DropError) as err:
        load_dataset("cifar10", root=str(tmp_path))
    assert str(err.value).startswith(f"CIFAR-10 was not found (or failed its checksum) in '{tmp_path}': expected ")


def test_cifar10_pickle_batches_are_read_by_torchvision(tmp_path, monkeypatch):
    # Our fake batches cannot match the official md5 sums, so only the checksum is relaxed to "file exists";
    # reading the pickles is torchvision's real code.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    first_batch, first_labels = _write_cifar10(tmp_path)
    data = load_dataset("cifar10", root=str(tmp_path))
    assert data.input_shape == (3, 32, 32) and len(data.x_train) == 50 and data.classes[0] == "class0"
    assert np.array_equal(data.x_train[:10].reshape(10, -1).numpy(), first_batch)
    assert data.y_train[:10].tolist() == first_labels
    assert data.y_val.tolist() == data.y_test.tolist() == list(range(10))     # first of each class -> val
    assert data.flip and data.max_shift == 4
    assert data.mean.tolist() == pytest.approx([0.4914, 0.4822, 0.4465])      # the paper's constants


def test_damaged_cifar_batch_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    _write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x02truncated")
    with pytest.raises(DropError) as err:
        load_dataset("cifar10", root=str(tmp_path))
    assert str(err.value).startswith(f"Reading CIFAR-10 in '{tmp_path}' failed (")
    assert str(err.value).endswith("). Delete the damaged files and rerun with --download.")


def test_svhn_mat_files_are_read_by_torchvision(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.svhn, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    rng = np.random.default_rng(0)
    written = {}
    for split, n in [("train", 30), ("test", 20)]:
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)          # SVHN's (H, W, C, N)
        y = (np.arange(n) % 10 + 1)[:, None]                              # labels 1..10, 10 meaning "0"
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": y})
        written[split] = x
    data = load_dataset("svhn", root=str(tmp_path))
    assert data.input_shape == (3, 32, 32) and data.classes == list("0123456789") and not data.flip
    assert data.y_train[:10].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    assert np.array_equal(data.x_train[0].numpy(), written["train"][..., 0].transpose(2, 0, 1))


@pytest.mark.parametrize("name", list(SOURCES))
def test_missing_torchvision_dataset_names_folder_and_download_flag(tmp_path, name):
    title, layout = SOURCES[name][1].title, SOURCES[name][1].layout
    with pytest.raises(DropError) as err:
        load_dataset(name, root=str(tmp_path))
    assert str(err.value) == (
        f"{title} was not found (or failed its checksum) in '{tmp_path}': expected {layout}. "
        f"Rerun with --download to fetch it into '{tmp_path}', or pass --data-root pointing at a folder that holds it."
    )
