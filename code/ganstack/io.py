"""Atomic file writes: a crash mid-write never leaves a truncated file behind."""
from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Iterator

_UMASK = os.umask(0)
os.umask(_UMASK)
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # atomic_path's names: .<name>.<mkstemp's 8>.tmp


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the same folder; rename it onto `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        # a stop (SIGTERM, Ctrl-C) arriving between creating the file and knowing its name would leave it
        with signals_deferred():
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            tmp = Path(name)
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_leftovers(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that writers killed mid-write (kill -9, power loss) left under
    `folder`, at any depth; complete files are never touched. Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.rglob(".*.tmp"):
        if _TEMPORARY.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_failure_reason(folder: str | os.PathLike, error: BaseException) -> str:
    """Why writing into `folder` failed, in words a user can act on. torch.save reports a full disk
    as an opaque RuntimeError ("unexpected pos ..."), so the free space and the process's file-size
    limit are checked first."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if free is not None and free < 64 * 2**20:
        return f"no space left on the device: {free / 2**20:.1f} MiB free"
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        return f"the file-size limit of this process (ulimit -f) is {limit} bytes"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends: files that only mean something together
    (a gallery's index.json and index.html) are written both or neither."""
    stops = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
