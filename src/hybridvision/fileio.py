"""Files written so that a crash never leaves half of one: atomic writes of bytes, text, JSON and tensors.

Every writer goes through ``atomic_write``: the content is written to a temporary file in the same directory,
flushed to disk, given the mode a new file would get (or the mode of the file it replaces), and renamed over
the target. Readers see the old file or the new one, never a mix.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a writer that was killed
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, mode)  # after writing: writers that replace the file would drop an earlier chmod
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, racing other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def save_text(text: str, path: str | Path) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_json(path: str | Path, fix: str) -> Any:
    """The JSON document in ``path``; a ValueError naming the file, where the parse failed and ``fix`` when the
    file is not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except ValueError as e:  # json.JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path} is not JSON ({e}); {fix}") from None


def save_json(data: Any, path: str | Path) -> None:
    save_text(json.dumps(data, indent=2, sort_keys=False), path)


def save_tensors(tensors: dict[str, Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """A safetensors file of detached, contiguous CPU copies of ``tensors``."""
    from safetensors.torch import save_file

    plain = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(plain, tmp, metadata=metadata))


def check_writable(path: str | Path, what: str) -> None:
    """Raise OSError (one line, naming ``what``) when a file cannot be written at ``path``: before the work."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a directory; give a file name")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path} cannot be created ({parent} is not a writable directory)")


def check_folder(path: str | Path, what: str, purpose: str) -> Path:
    """``path`` as a Path, when it is a folder or can become one; NotADirectoryError (one line) when it is a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{what} {path} is a file; give a folder {purpose}")
    return path


def refuse_existing(paths: Sequence[Path], option: str) -> None:
    """Raise FileExistsError (one line, naming the first file and ``option``) when any of ``paths`` exists already:
    before the work, so an earlier run's outputs are only replaced when asked for."""
    if found := [p for p in paths if p.exists()]:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise FileExistsError(f"{found[0]} exists already{more}; pass {option} to replace, or choose another --out")
