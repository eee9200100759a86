"""Results as data: atomic files, JSON, and where a result came from.

Every file jaxcifar writes (caches, checkpoints, JSON, figures) goes through
`atomic_open`: it is written to a temporary file in the same folder and renamed
into place, so a crash or Ctrl-C never leaves half a file under the real name.
`provenance()` records the command, library versions and hardware that every
results JSON carries.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import os
import platform
import shlex
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from jaxcifar.errors import UsageError

try:
    import fcntl
except ImportError:  # Windows: no flock; run folders are not locked there
    fcntl = None


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Opens a temporary file next to `path`; renames it to `path` on success.

    On an exception the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if e.filename is None:  # a write that failed (a full disk) names no file: name the one being written
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def refuse_overwrite(*paths: str | os.PathLike, force: bool = False) -> None:
    """Raises FileExistsError naming the paths that exist, unless `force`.

    Every command that writes to a path a user may already hold calls this
    before doing any work, and takes --force to replace.
    """
    taken = [str(p) for p in paths if Path(p).exists()]
    if taken and not force:
        raise FileExistsError(
            f"{', '.join(taken)} already exist{'s' if len(taken) == 1 else ''}; "
            "nothing is overwritten. Pass --force to replace, or choose another output path."
        )


def check_writable(folder: str | os.PathLike) -> None:
    """Raises UsageError unless `folder` (or the nearest existing parent) takes new files."""
    folder = Path(folder)
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--out {folder}: {existing} is a file, not a folder. Choose another --out.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise UsageError(
            f"--out {folder}: cannot write in {existing} ({e.strerror or e}). Choose a folder you can write to."
        ) from e


def check_new_folder(folder: str | os.PathLike) -> None:
    """For a study's --out: FileExistsError if `folder` holds anything (a study never reuses one), else
    `check_writable`."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(
            f"{folder} already exists and is not empty; nothing is overwritten. Choose another --out."
        )
    check_writable(folder)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Writes `obj` as indented JSON, atomically. NaN/inf are written as null."""
    with atomic_open(path, "w") as f:
        json.dump(_finite(obj), f, indent=2)
        f.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    """The JSON in `path`.

    Raises:
      UsageError: `path` is a folder, or its JSON is damaged or cut short (one line, naming it).
      FileNotFoundError: there is no `path`.
    """
    if Path(path).is_dir():
        raise UsageError(f"{path} is a folder, not a JSON file")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise UsageError(
            f"{path} is not valid JSON ({e.msg}, line {e.lineno}): it is damaged or was cut short"
        ) from None


LOCK = ".lock"  # in a run folder: the lock a run holds while it runs


def holds_only_the_lock(folder: str | os.PathLike) -> bool:
    """Whether `folder` is missing, empty, or holds only a lock left by a run that never started."""
    folder = Path(folder)
    return not folder.exists() or {p.name for p in folder.iterdir()} <= {LOCK}


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Holds an OS lock on `folder` (created if missing) while the block runs: one run per folder.

    The lock is `flock` on FOLDER/.lock, which the OS releases when the process ends, however
    it ends, so a crashed run never blocks the next one. Folders this made for a run that then
    wrote nothing (bad input found after the lock) are removed again. (Where the OS has no
    flock, as on Windows, nothing is locked.)

    Raises:
      UsageError: `folder` cannot be written (`check_writable`), or another process holds the lock;
        the message names the folder (and the holder's PID).
    """
    check_writable(folder)  # a file in the way, or no permission: one line, before anything is made
    if fcntl is None:
        yield
        return
    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    before = None if (folder / LOCK).exists() else {p.name for p in folder.iterdir()} if folder.exists() else set()
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise UsageError(
                f"{folder} is in use by another run (process {holder}); wait for it to end or stop it, "
                "or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        # A run that wrote nothing (refused, or failed before its first file) leaves nothing behind:
        # not its lock in a folder the user made, nor the folders it made.
        if before is not None and {p.name for p in folder.iterdir()} - {LOCK} == before:
            os.unlink(folder / LOCK)
            for made in created:
                made.rmdir()
        os.close(fd)  # releases the lock


def _finite(obj: Any) -> Any:
    """JSON has no NaN: map non-finite floats (and NumPy scalars) to plain values."""
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def command_line() -> str:
    """The command that started this process, as a user would type it."""
    program, *args = sys.argv or [""]
    path = Path(program)
    if path.suffix == ".py" and path.parent.name in ("jaxcifar", "research"):  # python -m PACKAGE.MODULE
        head = f"python -m {path.parent.name}.{path.stem}"
    elif program == "-c":  # python -c CODE (a notebook kernel, a pytest-xdist worker): the code is the interpreter's
        original = sys.orig_argv
        head = "python -c " + (shlex.quote(original[original.index("-c") + 1]) if "-c" in original[:-1] else "...")
    elif path.suffix == ".py":
        head = f"python {shlex.quote(program)}"
    else:
        head = shlex.quote(program)
    return " ".join([head, *(shlex.quote(a) for a in args)])


def versions() -> dict[str, str | None]:
    """Versions of Python and the libraries a result depends on, from the installed metadata.

    Nothing is imported: importing albumentations 2 just to read its version
    would start its online update check.
    """
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "albumentations"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


# The vector extensions that decide which CPU kernels XLA emits, and so the rounding of every sum:
# the same --quick sweep picked LR_MAX 0.0285 on one 2-core CPU and 0.0534 on another (issue 46).
VECTOR_EXTENSIONS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile")


def cpu(cpuinfo: str | None = None) -> dict[str, Any]:
    """The CPU's model name and the vector extensions it has, from /proc/cpuinfo (Linux) or `cpuinfo`'s
    text; elsewhere the model from `platform.processor()` and no extensions (an empty list means unknown)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {"model": platform.processor() or platform.machine(), "vector_extensions": []}
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    flags = set(fields.get("flags", fields.get("Features", "")).split())
    model = fields.get("model name") or fields.get("Model") or platform.processor() or platform.machine()
    return {"model": model, "vector_extensions": [x for x in VECTOR_EXTENSIONS if x in flags]}


def provenance() -> dict[str, Any]:
    """Command, library versions and hardware, for every results JSON."""
    import jax  # here, not at the top: data and augment use this module and import no JAX

    devices = jax.devices()
    return {
        "command": command_line(),
        "versions": versions(),
        "platform": devices[0].platform,
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "host": {"machine": platform.machine(), "cpu_count": os.cpu_count(), "system": platform.system(), "cpu": cpu()},
    }
