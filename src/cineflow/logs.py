"""Send a rule script's stdout/stderr (progress bars included) to the rule's log file."""

from __future__ import annotations

import contextlib
from pathlib import Path


@contextlib.contextmanager
def to_log(path: str | Path, mode: str = "w"):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode, buffering=1, encoding="utf-8") as fh, contextlib.redirect_stderr(fh), \
            contextlib.redirect_stdout(fh):
        try:
            yield fh
        except BaseException:
            import traceback

            traceback.print_exc(file=fh)
            raise
