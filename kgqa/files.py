"""Writing cache files safely: two processes writing at once never mix their bytes, and a reader sees the
old file or the new one, never half of one."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(file: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary path of this call's own beside `file`, then move it into place."""
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomically(file: Path, text: str) -> None:
    write_atomically(file, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def replace_folder(folder: Path, fill: Callable[[Path], None]) -> None:
    """Fill a fresh temporary folder beside `folder` with `fill(tmp)`, then put it in `folder`'s place.

    A concurrent writer that finished first keeps its folder: the contents are the same by construction."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        fill(tmp)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process put a complete folder there first
            if not folder.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
