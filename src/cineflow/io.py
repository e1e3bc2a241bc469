"""Reading and writing result files, in one place.

Writes are atomic (a temp file in the target's folder, renamed into place), so a killed job never
leaves a half-written output that looks complete. Reads close their files and say how text is
decoded; CSVs keep their text as written ("NA" is an id, not a missing value).
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pandas as pd

# Temporaries are named so that only cineflow's own match: they carry "cineflow-" and the writing process's id,
# so a sweep can tell a killed process's leftovers from those of one still running, and never mistakes a user's
# `.thesis.999.draft.tmp` for one: `.{target}.cineflow-{pid}-{random}.tmp[suffix]` files,
# `.{target}.cineflow-{pid}-{random}.tmpdir` folders (atomic_dir) and `.cineflow-frames-{pid}-{random}` folders.
_MARK = "cineflow-"
_TEMP_FILE = re.compile(r"^\..+\.cineflow-(\d+)-[^.]+\.tmp(\.\w+)?$")
_TEMP_DIR = re.compile(r"^(?:\..+\.cineflow-(\d+)-[^.]+\.tmpdir|\.cineflow-frames-(\d+)-[^.]+)$")


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path in the target's directory; rename it onto `path` on success, remove it on error.

    Args:
        path: the target.
        suffix: the temp file's extension, for writers that pick the format from it (OpenCV: ".avi").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_MARK}{os.getpid()}-", suffix=".tmp" + suffix,
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp folder beside `path`; on success it replaces `path` whole (a folder output such as a bundle
    is never seen half-written or mixed with an older one), on error it is removed, and after a kill
    `sweep_temporaries` removes it.

    Args:
        path: the folder to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{_MARK}{os.getpid()}-", suffix=".tmpdir", dir=path.parent))
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; outputs get the usual mode
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def frames_dir(parent: str | os.PathLike) -> tempfile.TemporaryDirectory:
    """A temporary folder in `parent` for the frames of videos being predicted; removed on exit and on error,
    and by `sweep_temporaries` after a kill."""
    return tempfile.TemporaryDirectory(dir=parent, prefix=f".{_MARK}frames-{os.getpid()}-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_temporaries(folder: str | os.PathLike, everything: bool = False, recursive: bool = True) -> list[Path]:
    """Remove the temporaries (atomic-write temp files, frame folders) that killed cineflow processes left in
    `folder`; return what was removed. A kill (SIGKILL, a node lost) runs no cleanup, so the next run sweeps.
    Only names cineflow gives its temporaries are touched (see _TEMP_FILE): nothing a user made, however named.

    Args:
        folder: a missing folder is fine.
        everything: remove every temporary, whoever made it. Only for a caller that knows nothing else
            writes there now: the workflow's start, which holds Snakemake's lock. Otherwise only those of
            processes no longer running on this machine go (pids of other machines cannot be checked: keep
            runs on several machines out of one output folder).
        recursive: also the folders below (the workflow's results/, all its own); False: `folder` itself only
            (cineflow-predict's output folder, which may be a user's home).
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in filenames:
            match = _TEMP_FILE.match(name)
            if match and (everything or not _alive(int(match.group(1)))):
                (Path(dirpath) / name).unlink(missing_ok=True)
                removed.append(Path(dirpath) / name)
        for name in list(dirnames):
            match = _TEMP_DIR.match(name)
            if match and (everything or not _alive(int(match.group(1) or match.group(2)))):
                shutil.rmtree(Path(dirpath) / name, ignore_errors=True)
                removed.append(Path(dirpath) / name)
                dirnames.remove(name)
        if not recursive:
            break
    return sorted(removed)


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


ID_COLUMNS = {"video_id": str, "group": str, "path": str}  # text however they look: "100109", "007"


def read_csv(path: str | os.PathLike, **options) -> pd.DataFrame:
    """A CSV this workflow wrote (splits, predictions, quarantine, history): empty cells stay "" and
    identifiers stay text (numeric-looking names such as Stall Catchers' 100109 must still match the
    manifest's), unless `options` (pandas.read_csv's) say otherwise."""
    return pd.read_csv(path, **{"keep_default_na": False, "dtype": ID_COLUMNS, **options})


def read_parquet(path: str | os.PathLike) -> pd.DataFrame:
    return pd.read_parquet(path)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_csv(path: str | os.PathLike, df: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")


def write_parquet(path: str | os.PathLike, df: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_ahead(fn: Callable, items: Iterable, threads: int, ahead: int, name: str = "cineflow") -> Iterator:
    """fn(item) of each item, in order, computed by `threads` threads at most `ahead` items ahead of the
    consumer (0 threads: one by one, when asked for). For work that runs without the GIL (decoders, copies out
    of memory maps), so that it overlaps what the caller does with each result; `ahead` bounds the memory and
    lets the caller reuse buffers that many results later."""
    if threads < 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix=name) as pool:
        todo = iter(items)
        pending = collections.deque(pool.submit(fn, item) for item in itertools.islice(todo, max(1, ahead)))
        while pending:
            result = pending.popleft().result()
            pending.extend(pool.submit(fn, item) for item in itertools.islice(todo, 1))
            yield result
