"""How the app shows an error: one ``st.error`` in the app's own words, never a Python exception box.

The messages come from ``drop_core``, where they name the CLI's flags ("Rerun with --download").
:func:`app_message` rewrites the flags the app has a control for into that control's label, and
says where the command line is needed for the rest, so there is one message source for both.
:func:`guard` is what every page entry point runs under: a ``DropError``, or an exception that
:func:`drop_core.errors.user_error` maps to one (a full disk, a read-only or damaged store, an
unreadable image, too little memory), becomes ``st.error`` + ``st.stop``; any other exception is
a bug of ours and is shown as "internal error: ..." with the path of the log that holds its
traceback. Streamlit's own control flow (``st.stop``, ``st.rerun``) derives from BaseException
and passes through.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path

import streamlit as st

from drop_core.errors import DropError, user_error
from drop_core.store import default_store_path

log = logging.getLogger("app")
ADVANCED = "Advanced → "
CLI = "python -m drop_core run"
KEEP = "\x00"                 # stands for "--" while the rules run

# (CLI wording, app wording), applied in order: longer phrases before the bare flag they contain.
# ``{dataset}`` is the dataset the page was loading (or NAME when unknown).
APP_WORDS: tuple[tuple[str, str], ...] = (
    (r"[Rr]erun with --download to fetch it into '([^']*)'",
     rf"download it once from the command line ({CLI} --dataset {{dataset}} --data-root '\1' --download), "
     r"then use it here"),
    (r"[Rr]erun with --download",
     rf"download it again from the command line ({CLI} --dataset {{dataset}} --download)"),
    (r"pass --data-root (pointing at|with)", "set the Data folder field to"),
    (r"pass --data-root", "set the Data folder field"),
    (r"--data-root", "the Data folder field"),
    (r"--min-per-class( N)?", f"{ADVANCED}Minimum samples kept per class"),
    (r"--epochs( N)?", f"{ADVANCED}Final epochs"),
    (r"--no-flip", f"{ADVANCED}Mirror flips when augmenting: off"),
    (r"--strength", f"{ADVANCED}DRoP strength"),
    (r"lower --lr",
     f"choose another preset or model (the app trains with the preset's learning rate; {CLI} --lr sets it)"),
    (r"(?:use|pick) --device (\S+)", r"choose Device \1"),
    (r"(?:use|pick) --preset (\S+)", r"choose Preset \1"),
    (r"--dataset imagefolder:PATH", "Dataset 'your image folder' and its path"),
    (r"(?:model or )?--batch-size", "model or preset (the preset sets the batch size)"),
    (r"\s*\(or add --force\)", ""),
    (r"point --store/--cache-dir \(or \$DROP_STORE/\$DROP_CACHE\) at",
     "restart the app with $DROP_STORE/$DROP_CACHE pointing at"),
    (r"pass --store \(or set \$DROP_STORE\) with", "restart the app with $DROP_STORE set to"),
    (r"pass --store with", "restart the app with $DROP_STORE set to"),
    (r"pass --cache-dir \(or set \$DROP_CACHE\) with", "restart the app with $DROP_CACHE set to"),
)
CLI_ONLY = (f" (Options written --like-this are set on the command line, see {CLI} --help; "
            f"the app uses the preset's values.)")


def app_message(text: str, *, dataset: str | None = None) -> str:
    """``text`` (a DropError message) with the CLI's flags replaced by the app's controls."""
    for pattern, words in APP_WORDS:     # flags in the commands we insert are kept from later rules
        text = re.sub(pattern, words.replace("{dataset}", dataset or "NAME").replace("--", KEEP), text)
    if re.search(r"(?<![\w-])--[a-z]", text):
        text += CLI_ONLY
    return text.replace(KEEP, "--")


def plain(text: str) -> str:
    """``text`` escaped for Streamlit's Markdown, so paths and globs show as typed: ``train/<class>/*.png``
    is not italic and ``$DROP_STORE/$DROP_CACHE`` is not LaTeX."""
    return re.sub(r"([\\`*_{}\[\]<>()#+!|~$])", r"\\\1", text)


def unplain(text: str) -> str:
    """The inverse of :func:`plain`: the message as the user reads it (tests compare with this)."""
    return re.sub(r"\\(.)", r"\1", text)


def log_path() -> Path:
    """Where the app writes tracebacks: ``logs/app.log`` next to the store (as the workers' logs), else
    a folder under the system's temporary directory when that one cannot be written."""
    for folder in (Path(default_store_path()).expanduser().resolve().parent / "logs",
                   Path(tempfile.gettempdir()) / "drop-explorer-logs"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "app.log"
            with open(path, "a"):
                return path
        except OSError:
            continue
    return Path(tempfile.gettempdir()) / "app.log"


def _log_bug(exc: BaseException) -> Path:
    """Append ``exc``'s traceback to :func:`log_path` (and the server's log); returns the file."""
    path = log_path()
    text = "".join(traceback.format_exception(exc))
    log.error("internal error, traceback in %s:\n%s", path, text)
    try:
        with open(path, "a") as f:
            f.write(f"--- {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}\n{text}")
    except OSError:
        pass                                      # the message still names the file we tried
    return path


def show_error(exc: BaseException, *, dataset: str | None = None, stop: bool = True) -> None:
    """``st.error`` for ``exc``: its user message in the app's words, or "internal error" and the log path
    for a bug of ours; then ``st.stop()`` unless ``stop`` is False."""
    error = user_error(exc)
    if error is None:
        path = _log_bug(exc)
        first = str(exc).splitlines()[0] if str(exc) else ""
        st.error(plain(f"internal error: {type(exc).__name__}: {first} — a bug of DRoP Explorer, not of your "
                       f"input. The traceback is in '{path}'; please report it."))
    else:
        st.error(plain(app_message(str(error), dataset=dataset)))
    if stop:
        st.stop()


@contextlib.contextmanager
def guard(*, dataset: str | None = None) -> Iterator[None]:
    """Run a page entry point (also usable as a decorator): any exception ends it in :func:`show_error`."""
    try:
        yield
    except Exception as exc:                      # the app's edge: no exception reaches the user raw
        show_error(exc, dataset=dataset)


def as_user_error(exc: Exception) -> DropError:
    """``exc`` as the DropError a user should see; a bug of ours is shown (internal error) and stops the page."""
    error = user_error(exc)
    if error is None:
        show_error(exc)                           # stops the script
        raise exc
    return error
