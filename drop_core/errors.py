"""User-facing errors: one line that says what was wrong and how to fix it.

:func:`user_error` is the one place that turns an exception a user can cause (a file they
cannot write, a full disk, a damaged database, zip or image, too little memory) into a
:class:`DropError`. The CLI and the app call it at their edges; it returns None for anything
else, so a bug of ours (a bare ``ValueError``, a ``KeyError``) still shows as a bug.
"""
from __future__ import annotations

import errno
import sqlite3
import sys
import zipfile


class DropError(Exception):
    """An error caused by user input or missing data; the CLI prints it as one line, the app as st.error."""


def _where(exc: OSError) -> str:
    """`` 'path'`` (both paths for a rename), or an empty string when the exception names no file."""
    names = [n for n in (exc.filename, exc.filename2) if n is not None]
    return "".join(f" {str(n)!r}" if i == 0 else f" -> {str(n)!r}" for i, n in enumerate(names))


def _os_error(exc: OSError) -> DropError | None:
    if isinstance(exc, BrokenPipeError):
        return None                                   # closed stdout (`... | head`): the CLI exits quietly
    where = _where(exc)
    text = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free some space, or point --store/--cache-dir (or $DROP_STORE/$DROP_CACHE) at another disk"
    elif exc.errno == errno.EROFS:
        fix = "choose a path on a writable disk"
    elif isinstance(exc, PermissionError):
        fix = "change its permissions (chmod u+rw, or of the folder: chmod u+rwx), or choose another path"
    elif isinstance(exc, IsADirectoryError):
        fix = "give a file path, not a folder"
    elif isinstance(exc, NotADirectoryError):
        fix = "a part of the path is a regular file; choose a path whose parents are folders"
    elif isinstance(exc, FileExistsError):
        fix = "a file is in the way of a folder of that name; move it or choose another path"
    elif isinstance(exc, FileNotFoundError):
        fix = "check the path (and that its folder exists)"
    elif isinstance(exc, (ConnectionError, TimeoutError)) or exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        fix = "check the network connection and retry"
    else:
        fix = "check the disk and the path, then retry"
    return DropError(f"{text}:{where}; {fix}." if where else f"{text}; {fix}.")


def _pil_error(exc: BaseException) -> DropError | None:
    """Pillow's errors, checked only when Pillow is loaded (otherwise none can have been raised)."""
    pil = sys.modules.get("PIL.Image")
    if pil is None:
        return None
    if isinstance(exc, (pil.DecompressionBombError, pil.DecompressionBombWarning)):
        return DropError(f"An image is too large to decode safely ({exc}); it may be a decompression bomb. "
                         f"Remove or shrink that file.")
    if isinstance(exc, pil.UnidentifiedImageError):
        return DropError(f"Cannot read an image ({exc}); remove or replace that file.")
    return None


def user_error(exc: BaseException) -> DropError | None:
    """The DropError a user should see for ``exc``, or None when ``exc`` is a bug of ours.

    A DropError is returned as it is. The message says what went wrong (naming the file when the
    exception has one) and how to fix it.
    """
    if isinstance(exc, DropError):
        return exc
    pil = _pil_error(exc)
    if pil is not None:
        return pil
    if isinstance(exc, OSError):
        return _os_error(exc)
    if isinstance(exc, MemoryError):
        return DropError(f"Out of memory{f' ({exc})' if str(exc) else ''}; use a smaller dataset, model or "
                         f"--batch-size, or a machine with more memory.")
    if isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError)):
        return None                                   # our SQL or our constraints: a bug
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return DropError(f"The results store is busy ({exc}): another process holds a write lock. Retry when "
                         f"it is done, or pass --store with another file.")
    if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc):
        return DropError(f"The results store is read-only ({exc}); make the file and its folder writable, "
                         f"or pass --store with a writable path.")
    if isinstance(exc, sqlite3.OperationalError) and "unable to open" in str(exc):
        return DropError(f"Cannot open the results store ({exc}): its file or folder is gone, unreadable or "
                         f"read-only; make both readable and writable, or pass --store with another file.")
    if isinstance(exc, sqlite3.DatabaseError):
        return DropError(f"The results store is damaged or is not a DRoP Explorer store ({exc}); move it away "
                         f"or pass --store with another file.")
    if isinstance(exc, zipfile.BadZipFile):
        return DropError(f"A zip or .npz file is damaged ({exc}); delete it (a cache entry is recomputed) "
                         f"or download it again.")
    if isinstance(exc, EOFError):
        return DropError(f"A file ended too early ({exc or 'truncated'}); delete it (a cache entry is "
                         f"recomputed) or download it again.")
    return None
