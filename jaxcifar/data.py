"""Where the CIFAR-10 images come from: files on disk to NumPy arrays.

One function, `load_cifar10`, returns the whole dataset as uint8 arrays, from one
of these sources (chosen by `--data`, or the `JAXCIFAR_DATA` environment variable):

  tfds         tensorflow-datasets' `cifar10` (what Colab has), read without
               TensorFlow through `tfds.data_source`; `--data-dir` is its data_dir.
  download     the official python archive `cifar-10-python.tar.gz`, downloaded
               once into the cache folder and md5-checked, as torchvision does.
  PATH         a local file or folder: the official archive (`.tar.gz`, md5-checked)
               or its extracted `cifar-10-batches-py` folder; or an image-folder tree
               `<root>/{train,test}/<class>/*.png|jpg` as a folder, `.tar.gz`/`.tgz`
               or `.zip` (../shared/data/cifar10-jpeg.tar.gz is one).
  synthetic    small, learnable fake data for tests and demos. Chosen only by name:
               no source ever falls back to it.

Decoded archives and image folders are cached as `.npz` in the cache folder
(`$JAXCIFAR_CACHE`, else `$XDG_CACHE_HOME/jaxcifar`, else `~/.cache/jaxcifar`),
keyed to the source's path, size and modification time, so a changed source is
read again. Cache files are written atomically. A second load of the 60,000 JPEGs
takes a fraction of a second instead of seconds of decoding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from jaxcifar.errors import UsageError
from jaxcifar.records import atomic_open

CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
NUM_TRAIN, NUM_TEST = 50_000, 10_000
IMAGE_SHAPE = (32, 32, 3)

ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_FOLDER = "cifar-10-batches-py"
_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_BATCH = "test_batch"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Bump when the decoding changes, so old caches are not reused.
_CACHE_VERSION = 1

OFFLINE_HINT = (
    "Offline options: --data PATH with the official archive cifar-10-python.tar.gz "
    "(or its extracted cifar-10-batches-py folder), or an image-folder tree "
    "<root>/{train,test}/<class>/*.png|jpg as a folder, .tar.gz or .zip; "
    "--data synthetic for a quick demo on fake data."
)


@dataclasses.dataclass(frozen=True)
class CIFAR10:
    """CIFAR-10 as arrays.

    Attributes:
      train_images: uint8[N_train, 32, 32, 3] (50,000 for the full set).
      train_labels: int32[N_train], in 0..9.
      test_images: uint8[N_test, 32, 32, 3] (10,000 for the full set).
      test_labels: int32[N_test].
      class_names: the 10 names in label order.
      source: where the arrays came from, for run records.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...] = CLASS_NAMES
    source: str = ""

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
                raise ValueError(f"{split} images must be uint8[N, 32, 32, 3], got {images.dtype}{list(images.shape)}")
            if labels.shape != (len(images),):
                raise ValueError(f"{split} labels must have shape ({len(images)},), got {labels.shape}")

    def fingerprint(self) -> dict:
        """What a run records of its data: source, image counts and the sha256 of every array, in order.

        Two sources with the same fingerprint hold the same images and labels in the same order
        (a copy of the archive that moved, say), so a run may resume on either. Hashing the
        full set's 184 MB takes under a second on 2 CPU cores (0.6 s measured here, under load).
        """
        h = hashlib.sha256()
        for array in (self.train_images, self.train_labels, self.test_images, self.test_labels):
            h.update(np.ascontiguousarray(array).tobytes())
        return {"source": self.source, "train": len(self.train_labels), "test": len(self.test_labels),
                "sha256": h.hexdigest()}  # fmt: skip


def default_cache_dir() -> Path:
    """`$JAXCIFAR_CACHE`, else `$XDG_CACHE_HOME/jaxcifar`, else `~/.cache/jaxcifar`."""
    if os.environ.get("JAXCIFAR_CACHE"):
        return Path(os.environ["JAXCIFAR_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "jaxcifar"


def compile_cache_folder(cache_dir: str | os.PathLike | None) -> Path:
    """Where a run keeps compiled programs: `xla` in `cache_dir` as given, else in `default_cache_dir()`."""
    return (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / "xla"


def resolve_source(data: str | os.PathLike | None) -> str:
    """The source `load_cifar10` reads: `data`, else `$JAXCIFAR_DATA`, else "download"."""
    if data is None:
        return os.environ.get("JAXCIFAR_DATA") or "download"
    return os.fspath(data)


def load_cifar10(
    data: str | os.PathLike | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    url: str = ARCHIVE_URL,
    md5: str | None = ARCHIVE_MD5,
) -> CIFAR10:
    """Loads CIFAR-10 as uint8 arrays from the source named by `data`.

    Args:
      data: "tfds", "download", "synthetic", or a path (see the module docstring).
        None reads `$JAXCIFAR_DATA`, and "download" where that is unset.
      data_dir: tfds's data_dir for "tfds"; the folder that keeps the downloaded
        archive for "download" (default: the cache folder).
      cache_dir: where decoded arrays are cached (default: `default_cache_dir()`).
      n_train, n_test: keep a class-stratified random subset of this many images.
      seed: seed of the subset choice (and of the synthetic images).
      url, md5: the official archive's address and checksum (for tests and mirrors);
        md5=None skips the check.

    Returns:
      A CIFAR10 with train uint8[50000, 32, 32, 3], int32[50000] and test
      uint8[10000, 32, 32, 3], int32[10000] (or the subset sizes).

    Raises:
      FileNotFoundError: the path does not exist.
      ValueError: the source is corrupt, incomplete or of the wrong form; the
        message says what was expected and what to do.
      RuntimeError: tfds or the download could not fetch the data (no network).
    """
    data = resolve_source(data)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    for flag, folder in (("--cache-dir", cache_dir), ("--data-dir", data_dir)):
        if folder is not None and Path(folder).expanduser().exists() and not Path(folder).expanduser().is_dir():
            raise UsageError(f"{flag} {folder}: a file, not a folder. Give a folder (it is made if missing).")
    name = os.fspath(data)
    if name == "synthetic":
        full = synthetic(seed=seed)
    elif name == "tfds":
        full = _load_tfds(data_dir, cache)
    elif name == "download":
        folder = Path(data_dir).expanduser() if data_dir is not None else cache
        archive = download_archive(folder, url=url, md5=md5)
        full = _cached(archive, cache, lambda: _read_archive(archive, md5))
    else:
        path = Path(name).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"--data {name!r}: no such file or folder. Give 'tfds', 'download', "
                f"'synthetic', or the path of a CIFAR-10 archive or image folder. {OFFLINE_HINT}"
            )
        full = _cached(path, cache, lambda: _read_path(path, md5))
    return subset(full, n_train, n_test, seed=seed)


def subset(ds: CIFAR10, n_train: int | None, n_test: int | None, seed: int = 0) -> CIFAR10:
    """A class-stratified random subset (None keeps a split whole).

    Each class gets n // k images, and the first n % k classes one more, drawn
    without replacement; the kept images stay in their original order.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = getattr(ds, f"{split}_images"), getattr(ds, f"{split}_labels")
        if n is None or n == len(labels):
            out[split] = (images, labels)
            continue
        if not 0 < n <= len(labels):
            raise ValueError(f"n_{split} must be in 1..{len(labels)} (the {split} set's size), got {n}")
        k = len(ds.class_names)
        keep = []
        for c in range(k):
            members = np.flatnonzero(labels == c)
            want = n // k + (1 if c < n % k else 0)
            if want > len(members):
                raise ValueError(
                    f"n_{split}={n} asks for {want} images of class {ds.class_names[c]!r}, "
                    f"which has only {len(members)}"
                )
            keep.append(rng.choice(members, size=want, replace=False))
        idx = np.sort(np.concatenate(keep))
        out[split] = (images[idx], labels[idx])
    return dataclasses.replace(
        ds,
        train_images=out["train"][0],
        train_labels=out["train"][1],
        test_images=out["test"][0],
        test_labels=out["test"][1],
    )


def synthetic(n_train: int = 5000, n_test: int = 1000, seed: int = 0) -> CIFAR10:
    """Learnable fake CIFAR-10: each class is a smooth colour pattern plus noise.

    The patterns are 4x4 random colour grids, mirrored left-right (so a flip keeps
    the class) and upsampled to 32x32; each image adds a random brightness and
    pixel noise. A small network learns them in an epoch or two. For tests and
    demos only: nothing falls back to it.
    """
    rng = np.random.default_rng([seed, 10])
    half = rng.normal(0.0, 1.0, size=(10, 4, 2, 3))
    grids = np.concatenate([half, half[:, :, ::-1]], axis=2)  # symmetric in x
    templates = np.kron(grids, np.ones((1, 8, 8, 1)))  # [10, 32, 32, 3]

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n, dtype=np.int32) % 10
        rng.shuffle(labels)
        brightness = rng.normal(0.0, 10.0, size=(n, 1, 1, 1))
        noise = rng.normal(0.0, 30.0, size=(n, *IMAGE_SHAPE))
        images = 128.0 + 45.0 * templates[labels] + brightness + noise
        return np.clip(np.rint(images), 0, 255).astype(np.uint8), labels

    train_images, train_labels = make(n_train)
    test_images, test_labels = make(n_test)
    return CIFAR10(train_images, train_labels, test_images, test_labels, CLASS_NAMES, f"synthetic(seed={seed})")


# --- the official archive -------------------------------------------------------


def file_digest(path: Path, algorithm: str = "md5", chunk: int = 1 << 20) -> str:
    """Hex digest (hashlib's `algorithm`) of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download_archive(folder: Path, url: str = ARCHIVE_URL, md5: str | None = ARCHIVE_MD5) -> Path:
    """The official archive in `folder`, downloaded first if it is not there yet.

    The download goes to a temporary file, is md5-checked, then renamed into
    place, so an interrupted download never leaves a half archive behind.
    """
    folder = Path(folder)
    target = folder / ARCHIVE_NAME
    if target.exists():
        return target
    try:  # before the network: a folder that cannot take the file is not a download failure
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UsageError(
            f"cannot write the download to {folder} ({e.strerror or e}): pass --data-dir with a folder you can "
            "write to, or --data PATH with an archive you have"
        ) from e
    print(f"Downloading CIFAR-10 from {url} to {target} (170 MB, once) ...", flush=True)
    try:
        with atomic_open(target) as out, urllib.request.urlopen(url, timeout=60) as response:
            digest = hashlib.md5()
            while block := response.read(1 << 20):
                digest.update(block)
                out.write(block)
            if md5 is not None and (got := digest.hexdigest()) != md5:
                raise ValueError(
                    f"The archive downloaded from {url} has md5 {got}, expected {md5}: the download "
                    "is corrupt or the mirror serves another file. Run again to retry."
                )
    except (urllib.error.URLError, OSError) as e:
        raise RuntimeError(f"Could not download CIFAR-10 from {url}: {e}. {OFFLINE_HINT}") from e
    return target


def _read_archive(path: Path, md5: str | None) -> CIFAR10:
    """Reads the official python archive (.tar.gz) or its extracted folder."""
    if path.is_dir():
        folder = path / ARCHIVE_FOLDER if (path / ARCHIVE_FOLDER).is_dir() else path
        blobs = {}
        for name in (*_TRAIN_BATCHES, _TEST_BATCH):
            file = folder / name
            if not file.is_file():
                raise ValueError(
                    f"{folder} is missing the batch file {name!r}: a complete {ARCHIVE_FOLDER} "
                    f"folder holds {', '.join(_TRAIN_BATCHES)} and {_TEST_BATCH}. Extract "
                    f"{ARCHIVE_NAME} again."
                )
            blobs[name] = file.read_bytes()
        source = f"official archive folder {folder}"
    else:
        if md5 is not None and (got := file_digest(path)) != md5:
            raise ValueError(
                f"{path} has md5 {got}, but the official {ARCHIVE_NAME} has {md5}: the file is "
                f"truncated, corrupt or another file. Download it again from {ARCHIVE_URL} "
                "(or use --data download)."
            )
        blobs = {}
        with _open_tar(path) as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in (*_TRAIN_BATCHES, _TEST_BATCH):
                    blobs[base] = _read_member(tar, member, path)
        missing = [n for n in (*_TRAIN_BATCHES, _TEST_BATCH) if n not in blobs]
        if missing:
            raise ValueError(f"{path} is not a complete CIFAR-10 python archive: missing {missing}.")
        source = f"official archive {path}"

    def unpack(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        for name in names:
            try:
                batch = pickle.loads(blobs[name], encoding="bytes")
                data = np.asarray(batch[b"data"], dtype=np.uint8)
                images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
                labels.append(np.asarray(batch[b"labels"], dtype=np.int32))
            except Exception as e:  # any unpickling or shape failure means a bad batch
                raise ValueError(f"Batch {name!r} of {path} is corrupt ({e}); get the archive again.") from e
        return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)

    train = unpack(_TRAIN_BATCHES)
    test = unpack((_TEST_BATCH,))
    return CIFAR10(*train, *test, CLASS_NAMES, source)


# --- image-folder trees --------------------------------------------------------


def _read_image_tree(path: Path) -> CIFAR10:
    """Reads `<root>/{train,test}/<class>/*.png|jpg` from a folder, tar.gz or zip."""
    files: dict[str, list[tuple[str, str, bytes]]] = {"train": [], "test": []}
    seen_dirs: set[tuple[str, str]] = set()
    for rel, blob in _walk_files(path):
        parts = rel.split("/")
        # Find "<split>/<class>/<file>" at any depth (archives often add a top folder).
        for i in range(len(parts) - 2):
            if parts[i] in files and len(parts) - i == 3:
                split, cls, fname = parts[i], parts[i + 1], parts[i + 2]
                seen_dirs.add((split, cls))
                if fname.lower().endswith(_IMAGE_SUFFIXES):
                    files[split].append((cls, rel, blob()))
                break
    if not files["train"] and not files["test"]:
        raise ValueError(
            f"{path} holds no images in the form <root>/{{train,test}}/<class>/*.png|jpg "
            f"(nor is it the official archive {ARCHIVE_NAME}). {OFFLINE_HINT}"
        )
    arrays = []
    for split in ("train", "test"):
        classes = {c for s, c in seen_dirs if s == split}
        if missing := [c for c in CLASS_NAMES if c not in classes]:
            folders = {tuple(f.split("/")[-2:]) for f in _folders(path)}  # the archive read once more, on error
            if empty := [c for c in missing if (split, c) in folders]:
                raise ValueError(
                    f"{path}: the {split} split's class folder {empty[0]} holds no images (*.png, *.jpg); "
                    "every class needs its images."
                )
            raise ValueError(
                f"{path}: the {split} split has no class folder for {missing}; expected one "
                f"folder per class: {', '.join(CLASS_NAMES)}."
            )
        if extra := sorted(classes - set(CLASS_NAMES)):
            raise ValueError(
                f"{path}: the {split} split has folders {extra} that are not CIFAR-10 classes "
                f"({', '.join(CLASS_NAMES)}); remove or rename them."
            )
        items = sorted(files[split], key=lambda t: (CLASS_NAMES.index(t[0]), t[1]))
        images = np.empty((len(items), *IMAGE_SHAPE), np.uint8)
        for i, (_, rel, blob) in enumerate(items):
            images[i] = _decode(blob, f"{path}:{rel}")
        labels = np.array([CLASS_NAMES.index(c) for c, _, _ in items], np.int32)
        arrays += [images, labels]
    return CIFAR10(*arrays, CLASS_NAMES, f"image folder {path}")


def _decode(blob: bytes, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(blob)) as im:
            array = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"{where} is not a readable image ({e}); replace or delete it.") from e
    if array.shape != IMAGE_SHAPE:
        raise ValueError(
            f"{where} is {array.shape[1]}x{array.shape[0]} pixels; CIFAR-10 images are 32x32. "
            "Resize it or remove it from the folder."
        )
    return array


def _folders(path: Path) -> list[str]:
    """The relative paths of the folders in a folder, tar or zip (an empty folder holds no file to find)."""
    if path.is_dir():
        return [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_dir()]
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return [info.filename.rstrip("/") for info in z.infolist() if info.is_dir()]
    with _open_tar(path) as tar:
        return [member.name.rstrip("/") for member in tar if member.isdir()]


def _walk_files(path: Path) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(relative path, () -> bytes) for every file in a folder, tar or zip."""
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            yield file.relative_to(path).as_posix(), file.read_bytes
    elif zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    if not info.is_dir():
                        yield info.filename, (lambda info=info: z.read(info))
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
            raise ValueError(f"{path} is a truncated or corrupt zip file ({e}); re-create it.") from e
    else:
        with _open_tar(path) as tar:
            for member in tar:
                if member.isfile():
                    blob = _read_member(tar, member, path)
                    yield member.name, (lambda blob=blob: blob)


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*")
    except (tarfile.ReadError, EOFError, zlib.error, OSError) as e:
        # tarfile's message lists every compression it tried, a line each: one line says it here
        what = (
            "a zip file with no zip directory"
            if path.suffix.lower() == ".zip"
            else ("neither a tar archive (plain, gz, bz2 or xz) nor a zip file")
        )
        raise ValueError(f"{path} is {what}: it may be truncated or corrupt. Download or create it again.") from e


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> bytes:
    try:
        return tar.extractfile(member).read()
    except (tarfile.ReadError, EOFError, zlib.error, OSError) as e:
        raise ValueError(
            f"{path} is truncated or corrupt (reading {member.name} failed: {e}). Download or create it again."
        ) from e


def _is_official_archive(path: Path) -> bool:
    if path.is_dir():
        return (path / _TEST_BATCH).is_file() or (path / ARCHIVE_FOLDER / _TEST_BATCH).is_file()
    if path.name.endswith(ARCHIVE_NAME):
        return True
    if zipfile.is_zipfile(path):
        return False
    with _open_tar(path) as tar:
        try:
            first = tar.next()
        except (tarfile.ReadError, EOFError, zlib.error, OSError) as e:
            raise ValueError(f"{path} is truncated or corrupt ({e}). Download or create it again.") from e
        return first is not None and first.name.split("/")[0] == ARCHIVE_FOLDER


def _read_path(path: Path, md5: str | None) -> CIFAR10:
    if _is_official_archive(path):
        return _read_archive(path, md5)
    return _read_image_tree(path)


# --- tfds ----------------------------------------------------------------------


TFDS_HOST = ("www.cs.toronto.edu", 443)  # where tfds downloads cifar10 from


def _load_tfds(data_dir: str | os.PathLike | None, cache: Path | None = None) -> CIFAR10:
    """tensorflow-datasets' cifar10 through `tfds.data_source` (no TensorFlow needed).

    When cifar10 is not prepared yet and its download host cannot be reached, this
    fails in seconds (tfds itself retries for minutes) and leaves no folders behind.
    """
    try:
        import tensorflow_datasets as tfds  # here: slow to import, only this source needs it
    except ModuleNotFoundError as e:
        raise RuntimeError(f"--data tfds needs the Python module {e.name!r}: pip install tensorflow-datasets") from e
    root = Path(data_dir).expanduser() if data_dir else Path(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets"))
    root = root.expanduser()
    existed = {p for p in (root, root / "cifar10", root / "downloads") if p.exists()}
    builder = tfds.builder("cifar10", data_dir=data_dir)
    if not builder.is_prepared() and (error := _unreachable(*TFDS_HOST)):
        raise RuntimeError(
            f"--data tfds: cifar10 is not prepared in {root}, and tfds cannot download it: "
            f"{TFDS_HOST[0]} is unreachable ({error}). {OFFLINE_HINT}"
        )
    prepared = Path(builder.data_dir)  # the prepared copy's folder, which the cache is keyed on
    if cache is not None and builder.is_prepared() and prepared.is_dir():  # decoded once, like the other sources
        return _cached(prepared, cache, lambda: _read_tfds(tfds, data_dir, root, existed))
    full = _read_tfds(tfds, data_dir, root, existed)
    if cache is not None and prepared.is_dir():  # prepared just now: the next session loads the arrays
        _cached(prepared, cache, lambda: full)
    return full


def _read_tfds(tfds: Any, data_dir: str | os.PathLike | None, root: Path, existed: set[Path]) -> CIFAR10:
    """Both splits of tfds's cifar10 through `tfds.data_source`, preparing it first where it is not."""
    arrays = []
    try:
        for split in ("train", "test"):
            source = tfds.data_source("cifar10", split=split, data_dir=data_dir)
            examples = [source[i] for i in range(len(source))]
            arrays += [
                np.stack([np.asarray(ex["image"], np.uint8) for ex in examples]),
                np.array([int(ex["label"]) for ex in examples], np.int32),
            ]
    except ModuleNotFoundError as e:
        _remove_new(root, existed)
        raise RuntimeError(
            f"--data tfds: tensorflow-datasets needs the Python module {e.name!r}, which is not installed: "
            f"pip install {e.name}"
        ) from e
    except Exception as e:  # tfds raises many kinds: network, format, missing extras
        _remove_new(root, existed)
        raise RuntimeError(
            f"tensorflow-datasets could not provide cifar10 ({type(e).__name__}: {e}). Without a "
            "network tfds can only read a copy prepared earlier in array_record format "
            f"(give its folder with --data-dir). {OFFLINE_HINT}"
        ) from e
    where = f" in {data_dir}" if data_dir else ""
    return CIFAR10(*arrays, CLASS_NAMES, f"tfds cifar10{where}")


def _unreachable(host: str, port: int, timeout: float = 5.0) -> str | None:
    """None if a TCP connection to host:port opens within `timeout` seconds, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as e:
        return f"{type(e).__name__}: {e}"


def _remove_new(root: Path, existed: set[Path]) -> None:
    """Removes the folders a failed tfds call created under `root` (those not in `existed`)."""
    for path in (root / "cifar10", root / "downloads", root):
        if path.exists() and path not in existed:
            shutil.rmtree(path, ignore_errors=True)


# --- the cache -----------------------------------------------------------------


def _cache_key(path: Path) -> str:
    """Changes when the source's path, size or modification time change."""
    path = path.resolve()
    if path.is_dir():
        stats = [
            (p.relative_to(path).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*"))
            if p.is_file()
        ]
    else:
        st = path.stat()
        stats = [(st.st_size, st.st_mtime_ns)]
    text = repr((_CACHE_VERSION, str(path), stats))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cached(path: Path, cache_dir: Path, read: Callable[[], CIFAR10]) -> CIFAR10:
    """`read()` once per version of `path`; later calls load the cached arrays."""
    stem = path.name.split(".")[0] or "data"
    file = cache_dir / f"cifar10-{stem}-{_cache_key(path)}.npz"
    if file.exists():
        try:
            with np.load(file, allow_pickle=False) as z:
                return CIFAR10(
                    z["train_images"],
                    z["train_labels"],
                    z["test_images"],
                    z["test_labels"],
                    tuple(str(c) for c in z["class_names"]),
                    str(z["source"]),
                )
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # an unreadable cache is rebuilt below
    ds = read()
    try:
        with atomic_open(file) as f:
            np.savez(
                f,
                train_images=ds.train_images,
                train_labels=ds.train_labels,
                test_images=ds.test_images,
                test_labels=ds.test_labels,
                class_names=np.array(ds.class_names),
                source=np.array(ds.source),
            )
    except OSError as e:  # a read-only cache folder costs speed, not correctness
        print(f"Note: could not write the data cache {file} ({e}); the next load decodes again.")
    return ds
