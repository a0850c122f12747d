"""Putting files in place atomically (an embedded store, a release's COGs)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path


def replace_file(src: Path, dst: Path, prepare: Callable[[Path], object] | None = None) -> None:
    """Copy ``src`` over ``dst`` atomically; ``prepare`` may change the copy before it is put in place."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.import")
    shutil.copyfile(src, tmp)
    try:
        if prepare is not None:
            prepare(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, dst)
