"""Tests for jaxcifar.data: every source, the cache, subsets and every error path."""

import hashlib
import importlib.util
import pickle
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxcifar import data as data_lib
from jaxcifar.data import CLASS_NAMES, load_cifar10

# Tiny stand-ins: PER_CLASS images per class per split.
PER_CLASS = 3


def class_images(n_per_class, seed, flat=False):
    """uint8 images whose red channel encodes the class (label * 25).

    flat=True makes the other channels constant too, so the colour survives JPEG.
    """
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), n_per_class).astype(np.int32)
    images = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
    if flat:
        images[:] = 128
    images[..., 0] = (labels * 25)[:, None, None]
    return images, labels


def write_official_archive(root: Path, per_class=2) -> Path:
    """A miniature cifar-10-python.tar.gz: 5 train batches and a test batch."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        images, labels = class_images(per_class, seed=i)
        chw = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
        batch = {b"data": chw, b"labels": labels.tolist(), b"batch_label": name.encode()}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [c.encode() for c in CLASS_NAMES]}))
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return archive


def write_image_tree(root: Path, fmt="png", per_class=PER_CLASS) -> dict:
    """<root>/{train,test}/<class>/NNNN.<fmt>; returns the arrays written."""
    written = {}
    for split, seed in (("train", 1), ("test", 2)):
        images, labels = class_images(per_class, seed, flat=fmt == "jpg")
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / CLASS_NAMES[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i:04d}.{fmt}")
        written[split] = (images, labels)
    return written


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def assert_balanced(ds, n_train, n_test):
    assert ds.train_images.shape == (n_train, 32, 32, 3) and ds.train_images.dtype == np.uint8
    assert ds.test_images.shape == (n_test, 32, 32, 3) and ds.test_images.dtype == np.uint8
    assert ds.train_labels.dtype == np.int32 and ds.test_labels.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(ds.train_labels, minlength=10), n_train // 10)
    np.testing.assert_array_equal(np.bincount(ds.test_labels, minlength=10), n_test // 10)
    assert ds.class_names == CLASS_NAMES


# --- the official archive -------------------------------------------------------


def test_official_archive_reads_batches_in_order(tmp_path):
    archive = write_official_archive(tmp_path / "src")
    ds = load_cifar10(archive, cache_dir=tmp_path / "cache", md5=md5(archive))
    assert_balanced(ds, 5 * 20, 20)
    # data_batch_1 comes first; its pixels round-trip through the CHW layout.
    images, labels = class_images(2, seed=0)
    np.testing.assert_array_equal(ds.train_images[:20], images)
    np.testing.assert_array_equal(ds.train_labels[:20], labels)
    np.testing.assert_array_equal(ds.test_images, class_images(2, seed=5)[0])


def test_official_archive_wrong_md5_is_rejected(tmp_path):
    archive = write_official_archive(tmp_path / "src")
    # The default md5 is the official archive's: this miniature does not match it.
    with pytest.raises(
        ValueError,
        match=r"has md5 [0-9a-f]{32}, but the official cifar-10-python.tar.gz has c58f30108f718f92721af3b95e74349a",
    ):
        load_cifar10(archive, cache_dir=tmp_path / "cache")


def test_extracted_archive_folder_and_missing_batch(tmp_path):
    write_official_archive(tmp_path / "src")
    ds = load_cifar10(tmp_path / "src" / "cifar-10-batches-py", cache_dir=tmp_path / "cache")
    assert_balanced(ds, 100, 20)
    (tmp_path / "src" / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(ValueError, match="missing the batch file 'data_batch_3'"):
        load_cifar10(tmp_path / "src", cache_dir=tmp_path / "cache2")


def test_truncated_archive_is_a_clear_error(tmp_path):
    archive = write_official_archive(tmp_path / "src")
    truncated = tmp_path / "cut" / "cifar-10-python.tar.gz"
    truncated.parent.mkdir()
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_cifar10(truncated, cache_dir=tmp_path / "cache", md5=None)
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not an archive at all" * 10)
    with pytest.raises(ValueError) as exc:  # one line: not tarfile's list of every compression it tried
        load_cifar10(garbage, cache_dir=tmp_path / "cache")
    assert str(exc.value) == (
        f"{garbage} is neither a tar archive (plain, gz, bz2 or xz) nor a zip file: it may be truncated or "
        "corrupt. Download or create it again."
    )


def test_corrupt_batch_inside_archive(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_official_archive(tmp_path / "good")
    folder.mkdir()
    for f in (tmp_path / "good" / "cifar-10-batches-py").iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(ValueError, match="Batch 'test_batch' of .* is corrupt"):
        load_cifar10(folder, cache_dir=tmp_path / "cache")


def test_download_checks_md5_and_keeps_the_archive(tmp_path):
    archive = write_official_archive(tmp_path / "mirror")
    url = archive.as_uri()
    store = tmp_path / "store"
    with pytest.raises(
        ValueError, match=r"downloaded from .* has md5 [0-9a-f]{32}, expected 0{32}: the download is corrupt"
    ):
        load_cifar10("download", data_dir=store, cache_dir=tmp_path / "cache", url=url, md5="0" * 32)
    assert not any(store.iterdir())  # nothing half-written is left
    ds = load_cifar10("download", data_dir=store, cache_dir=tmp_path / "cache", url=url, md5=md5(archive))
    assert_balanced(ds, 100, 20)
    assert (store / "cifar-10-python.tar.gz").read_bytes() == archive.read_bytes()
    # Downloaded once: a second load does not touch the URL.
    again = load_cifar10(
        "download", data_dir=store, cache_dir=tmp_path / "cache", url="file:///nonexistent", md5=md5(archive)
    )
    np.testing.assert_array_equal(again.train_images, ds.train_images)


def test_download_without_network_names_offline_options(tmp_path):
    with pytest.raises(RuntimeError, match=r"(?s)Could not download CIFAR-10 from .*Offline options: --data PATH"):
        load_cifar10("download", data_dir=tmp_path, cache_dir=tmp_path, url=(tmp_path / "absent.tar.gz").as_uri())


# --- image-folder trees ---------------------------------------------------------


@pytest.mark.parametrize("container", ["folder", "tar.gz", "zip"])
def test_image_tree_in_every_container(tmp_path, container):
    root = tmp_path / "tree" / "cifar10-png"
    written = write_image_tree(root)
    if container == "folder":
        source = root
    elif container == "tar.gz":
        source = tmp_path / "cifar10-png.tar.gz"
        with tarfile.open(source, "w:gz") as tar:
            tar.add(root, arcname="cifar10-png")
    else:
        source = tmp_path / "cifar10-png.zip"
        with zipfile.ZipFile(source, "w") as z:
            for f in sorted(root.rglob("*.png")):
                z.write(f, f.relative_to(root.parent).as_posix())
    ds = load_cifar10(source, cache_dir=tmp_path / "cache")
    assert_balanced(ds, 10 * PER_CLASS, 10 * PER_CLASS)
    # PNG is lossless: the pixels are exactly those written, sorted by class.
    order = np.argsort(written["train"][1], kind="stable")
    np.testing.assert_array_equal(ds.train_images, written["train"][0][order])
    np.testing.assert_array_equal(ds.train_labels, written["train"][1][order])


def test_jpeg_tree_decodes_to_the_right_classes(tmp_path):
    write_image_tree(tmp_path / "t", fmt="jpg")
    ds = load_cifar10(tmp_path / "t", cache_dir=tmp_path / "cache")
    # The red channel encodes label * 25; JPEG keeps a flat colour within a few levels.
    np.testing.assert_allclose(ds.train_images[..., 0].mean(axis=(1, 2)), ds.train_labels * 25, atol=4)
    np.testing.assert_array_equal(np.bincount(ds.train_labels), [PER_CLASS] * 10)


def test_image_tree_missing_class_folder(tmp_path):
    write_image_tree(tmp_path / "t")
    for f in (tmp_path / "t" / "test" / "frog").iterdir():
        f.unlink()
    (tmp_path / "t" / "test" / "frog").rmdir()
    with pytest.raises(ValueError, match=r"the test split has no class folder for \['frog'\]"):
        load_cifar10(tmp_path / "t", cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("container", ["folder", "tar.gz"])
def test_image_tree_empty_class_folder_is_named_as_empty_not_missing(tmp_path, container):
    write_image_tree(tmp_path / "t")
    for f in (tmp_path / "t" / "train" / "cat").iterdir():
        f.unlink()
    source = tmp_path / "t"
    if container == "tar.gz":
        source = tmp_path / "t.tar.gz"
        with tarfile.open(source, "w:gz") as tar:
            tar.add(tmp_path / "t", arcname="t")
    with pytest.raises(ValueError) as exc:
        load_cifar10(source, cache_dir=tmp_path / "cache")
    assert str(exc.value) == (
        f"{source}: the train split's class folder cat holds no images (*.png, *.jpg); every class needs its images."
    )


def test_image_tree_foreign_class_folder(tmp_path):
    write_image_tree(tmp_path / "t")
    (tmp_path / "t" / "train" / "unicorn").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "t" / "train" / "unicorn" / "0.png")
    with pytest.raises(ValueError, match=r"folders \['unicorn'\] that are not CIFAR-10 classes"):
        load_cifar10(tmp_path / "t", cache_dir=tmp_path / "cache")


def test_image_tree_wrong_size_names_the_file(tmp_path):
    write_image_tree(tmp_path / "t")
    Image.new("RGB", (64, 48)).save(tmp_path / "t" / "train" / "cat" / "big.png")
    with pytest.raises(ValueError, match=r"train/cat/big.png is 64x48 pixels; CIFAR-10 images are 32x32"):
        load_cifar10(tmp_path / "t", cache_dir=tmp_path / "cache")


def test_image_tree_unreadable_image_names_the_file(tmp_path):
    write_image_tree(tmp_path / "t")
    (tmp_path / "t" / "test" / "dog" / "broken.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(ValueError, match=r"test/dog/broken.png is not a readable image"):
        load_cifar10(tmp_path / "t", cache_dir=tmp_path / "cache")


def test_folder_without_images(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"holds no images in the form <root>/\{train,test\}/<class>"):
        load_cifar10(tmp_path / "empty", cache_dir=tmp_path / "cache")


def test_missing_path():
    with pytest.raises(
        FileNotFoundError, match=r"--data '/no/such/cifar.tar.gz': no such file or folder.*Offline options"
    ):
        load_cifar10("/no/such/cifar.tar.gz")


def test_env_var_names_the_default_source(tmp_path, monkeypatch):
    write_image_tree(tmp_path / "t")
    monkeypatch.setenv("JAXCIFAR_DATA", str(tmp_path / "t"))
    ds = load_cifar10(cache_dir=tmp_path / "cache")
    assert ds.source == f"image folder {tmp_path / 't'}"


# --- the cache ------------------------------------------------------------------


def test_cache_is_used_and_follows_changes_to_the_source(tmp_path, monkeypatch):
    source = tmp_path / "t.tar.gz"
    write_image_tree(tmp_path / "t")
    with tarfile.open(source, "w:gz") as tar:
        tar.add(tmp_path / "t", arcname="t")
    cache = tmp_path / "cache"
    first = load_cifar10(source, cache_dir=cache)
    files = list(cache.glob("cifar10-t-*.npz"))
    assert len(files) == 1 and not list(cache.glob(".*"))  # no temporary left over

    # The second load reads the cache: it does not decode a single image.
    def no_decode(*args):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(data_lib, "_decode", no_decode)
    second = load_cifar10(source, cache_dir=cache)
    np.testing.assert_array_equal(first.train_images, second.train_images)
    monkeypatch.undo()

    # A changed source (new contents, new mtime) is read again.
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(tmp_path / "t" / "test" / "cat" / "zz.png")
    time.sleep(0.01)
    with tarfile.open(source, "w:gz") as tar:
        tar.add(tmp_path / "t", arcname="t")
    third = load_cifar10(source, cache_dir=cache)
    assert len(third.test_labels) == len(first.test_labels) + 1
    assert len(list(cache.glob("cifar10-t-*.npz"))) == 2


def test_unreadable_cache_is_rebuilt(tmp_path):
    write_image_tree(tmp_path / "t")
    cache = tmp_path / "cache"
    ds = load_cifar10(tmp_path / "t", cache_dir=cache)
    (file,) = cache.glob("*.npz")
    file.write_bytes(b"garbage")
    again = load_cifar10(tmp_path / "t", cache_dir=cache)
    np.testing.assert_array_equal(again.train_images, ds.train_images)


# --- subsets and synthetic data -------------------------------------------------


def test_subset_is_stratified_and_deterministic():
    ds = data_lib.synthetic(n_train=1000, n_test=200, seed=3)
    sub = data_lib.subset(ds, 103, 20, seed=1)
    np.testing.assert_array_equal(np.bincount(sub.train_labels), [11, 11, 11] + [10] * 7)
    np.testing.assert_array_equal(np.bincount(sub.test_labels), [2] * 10)
    again = data_lib.subset(ds, 103, 20, seed=1)
    np.testing.assert_array_equal(sub.train_images, again.train_images)
    other = data_lib.subset(ds, 103, 20, seed=2)
    assert not np.array_equal(sub.train_images, other.train_images)
    # Every kept image is one of the originals, with its own label.
    rows = {img.tobytes(): lab for img, lab in zip(ds.train_images, ds.train_labels)}
    assert all(rows[img.tobytes()] == lab for img, lab in zip(sub.train_images, sub.train_labels))


def test_subset_errors():
    ds = data_lib.synthetic(n_train=100, n_test=50)
    with pytest.raises(ValueError, match=r"n_train must be in 1..100"):
        data_lib.subset(ds, 101, None)
    with pytest.raises(ValueError, match=r"n_test must be in 1..50"):
        data_lib.subset(ds, None, 0)


def test_synthetic_is_balanced_and_explicit():
    ds = load_cifar10("synthetic", n_train=500, n_test=100)
    assert_balanced(ds, 500, 100)
    assert ds.source.startswith("synthetic")
    # Class templates differ: per-class mean images are far apart.
    means = np.stack([ds.train_images[ds.train_labels == c].mean(0) for c in range(10)])
    dist = np.abs(means[:, None] - means[None]).mean(axis=(2, 3, 4))
    assert dist[~np.eye(10, dtype=bool)].min() > 10


def test_dataset_validates_shapes():
    good = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match=r"train images must be uint8\[N, 32, 32, 3\], got float32\[2, 32, 32, 3\]"):
        data_lib.CIFAR10(good.astype(np.float32), np.zeros(2, np.int32), good, np.zeros(2, np.int32))


# --- tfds -----------------------------------------------------------------------


def test_tfds_source_offline_with_mock_data(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(data_lib, "_unreachable", lambda host, port: None)  # mock_data needs no network
    with tfds.testing.mock_data(num_examples=30, policy=tfds.testing.MockPolicy.USE_CODE):
        ds = load_cifar10("tfds", cache_dir=tmp_path)
    assert ds.train_images.shape == (30, 32, 32, 3) and ds.train_images.dtype == np.uint8
    assert ds.test_images.shape == (30, 32, 32, 3)
    assert ds.train_labels.dtype == np.int32 and ds.train_labels.max() < 10
    assert ds.source == "tfds cifar10"


def test_tfds_without_network_fails_fast_and_leaves_nothing(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(data_lib, "TFDS_HOST", ("192.0.2.1", 443))  # TEST-NET-1: never answers
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"(?s)cifar10 is not prepared in .*tfds.*192.0.2.1 is unreachable.*Offline"):
        load_cifar10("tfds", data_dir=tmp_path / "tfds", cache_dir=tmp_path / "cache")
    assert time.perf_counter() - start < 15  # tfds's own retries took 3 min 24 s
    assert not (tmp_path / "tfds").exists()


def test_tfds_missing_module_is_named_and_its_folders_removed(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(data_lib, "_unreachable", lambda host, port: None)

    def needs_a_module(*args, data_dir=None, **kwargs):
        (Path(data_dir) / "cifar10" / "3.0.2").mkdir(parents=True)  # what tfds leaves before failing
        raise ModuleNotFoundError("No module named 'importlib_resources'", name="importlib_resources")

    monkeypatch.setattr(tfds, "data_source", needs_a_module)
    with pytest.raises(RuntimeError, match=r"needs the Python module 'importlib_resources'.*pip install"):
        load_cifar10("tfds", data_dir=tmp_path / "tfds", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "tfds").exists()


def test_the_tfds_path_has_the_modules_it_imports():
    # tensorflow-datasets 4.9 imports importlib_resources to download without declaring it.
    pytest.importorskip("tensorflow_datasets")
    assert importlib.util.find_spec("importlib_resources") is not None


# --- the real data --------------------------------------------------------------


def test_real_cifar10(real_cifar):
    assert_balanced(real_cifar, 50_000, 10_000)
    mean = real_cifar.train_images.reshape(-1, 3).mean(axis=0) / 255.0
    np.testing.assert_allclose(mean, [0.4914, 0.4822, 0.4465], atol=0.01)


def test_tfds_arrays_are_decoded_once_and_cached_as_the_other_sources(tmp_path, monkeypatch):
    import sys
    import types

    prepared = tmp_path / "tfds" / "cifar10" / "3.0.2"
    prepared.mkdir(parents=True)
    (prepared / "cifar10-train.array_record-00000-of-00001").write_bytes(b"records")
    reads = []
    rng = np.random.default_rng(0)

    class Builder:  # a copy prepared in an earlier session
        data_dir = str(prepared)

        def is_prepared(self):
            return True

    def data_source(name, split, data_dir):
        reads.append(split)
        return [{"image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "label": k % 10} for k in range(20)]

    fake = types.SimpleNamespace(builder=lambda name, data_dir=None: Builder(), data_source=data_source)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    first = load_cifar10("tfds", data_dir=tmp_path / "tfds", cache_dir=tmp_path / "cache")
    again = load_cifar10("tfds", data_dir=tmp_path / "tfds", cache_dir=tmp_path / "cache")
    assert reads == ["train", "test"]  # the second load read the cached arrays, not tfds
    np.testing.assert_array_equal(again.train_images, first.train_images)
    assert again.source == first.source and len(list((tmp_path / "cache").glob("cifar10-3-*.npz"))) == 1
