"""Faults a user can cause, created for real, end in one st.error in the app's words, never an exception box.

A store that is not SQLite, a read-only store (before and after the page opened it), a corrupt
image, a decompression bomb, a one-class folder (refused when it is chosen, nothing decoded), a
dataset that is not downloaded, a failed run's recorded message, and a bug of ours (shown as an
internal error with the path of its traceback). Read-only files are made with ``chattr +i``,
which stops root too, or ``chmod`` when not root.
"""
import argparse
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from app import errors, jobs
from drop_core.cli import build_parser
from drop_core.pipeline import RunConfig
from drop_core.pipeline import run as run_pipeline
from drop_core.store import Store

REPO = Path(__file__).resolve().parents[2]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("DROP_STORE", str(tmp_path / "runs.sqlite"))
    monkeypatch.setenv("DROP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path


def _page(name: str) -> AppTest:
    return AppTest.from_file(str(REPO / "app" / "pages" / f"{name}.py"), default_timeout=90).run()


def _errors(at: AppTest) -> list[str]:
    assert not at.exception, [e.value for e in at.exception]
    return [errors.unplain(str(e.value)) for e in at.error]


def _folder(root: Path, per_class: dict[str, int]) -> None:
    for split in ("train", "test"):
        for k, name in enumerate(per_class):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(per_class[name]):
                pixels = np.random.default_rng(100 * k + i).integers(0, 256, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i:03d}.png")


def _choose_folder(path: Path) -> AppTest:
    at = _page("experiment")
    at.selectbox(key="exp_dataset").select("imagefolder").run()
    return at.text_input(key="exp_folder").input(str(path)).run()


def _lock(paths: list[Path]) -> list[str]:
    """Make ``paths`` read-only for this process; returns the undo command's arguments."""
    if shutil.which("chattr") and subprocess.run(["chattr", "+i", *map(str, paths)],
                                                 capture_output=True).returncode == 0:
        return ["chattr", "-i", *map(str, paths)]
    if IS_ROOT:
        pytest.skip("running as root without chattr: nothing makes a file read-only for root")
    for p in paths:
        p.chmod(0o555 if p.is_dir() else 0o444)
    return ["chmod", "u+w", *map(str, paths)]


# --- the store ---------------------------------------------------------------------------

@pytest.mark.parametrize("page", ["experiment", "results"])
def test_a_store_that_is_not_sqlite_is_one_error_and_stays_untouched(env, monkeypatch, page):
    notes = env / "notes.txt"
    notes.write_text("my notes, not a database")
    monkeypatch.setenv("DROP_STORE", str(notes))
    [message] = _errors(_page(page))
    assert f"'{notes}' is not a SQLite database" in message
    assert "restart the app with $DROP_STORE set to another path" in message and "--store" not in message
    assert notes.read_text() == "my notes, not a database"


@pytest.mark.parametrize("page", ["experiment", "results"])
def test_another_programs_sqlite_database_is_one_error_in_the_apps_words(env, monkeypatch, page):
    other = env / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE people (name TEXT)")
    db.close()
    before = other.read_bytes()
    monkeypatch.setenv("DROP_STORE", str(other))
    [message] = _errors(_page(page))
    assert "a SQLite database of another program (tables: people)" in message
    assert "restart the app with $DROP_STORE set to another path" in message and "--store" not in message
    assert other.read_bytes() == before


@pytest.mark.parametrize("page", ["experiment", "results"])
def test_a_read_only_store_is_one_error(env, page):
    path = env / "runs.sqlite"
    Store(path).create_run({"dataset": "gaussians"}, "k", status="finished")
    undo = _lock([path])
    try:
        [message] = _errors(_page(page))
    finally:
        subprocess.run(undo, check=True)
    assert f"The results store '{path}' is read-only (its file)" in message
    assert "--store" not in message
    assert len(Store(path).list_runs()) == 1                       # nothing lost


def test_a_store_made_read_only_after_the_page_opened_it_is_one_error_on_run(env):
    at = _page("experiment")
    assert _errors(at) == [] and at.button(key="exp_run")
    folder = env / "runs.sqlite"
    locked = sorted(folder.parent.glob("runs.sqlite*")) + [folder.parent]
    undo = _lock(locked)
    try:
        at.button(key="exp_run").click().run()
        messages = _errors(at)
    finally:
        subprocess.run(undo, check=True)
    assert len(messages) == 1 and "results store" in messages[0], messages
    assert "--store" not in messages[0] and "internal error" not in messages[0]
    assert Store(folder).list_runs().empty                          # no run was queued


# --- image folders -------------------------------------------------------------------------

def test_a_corrupt_image_is_named(env):
    _folder(env / "imgs", {"a": 3, "b": 3})
    bad = env / "imgs" / "train" / "b" / "001.png"
    bad.write_bytes(b"not a png at all")
    at = _choose_folder(env / "imgs")
    [message] = _errors(at)
    assert message.startswith(f"Cannot decode image file '{bad}'")
    assert not [b for b in at.button if b.key == "exp_run"]


def test_a_decompression_bomb_is_named(env, monkeypatch):
    _folder(env / "imgs", {"a": 3, "b": 3})
    bomb = env / "imgs" / "train" / "b" / "001.png"
    Image.new("L", (64, 64)).save(bomb)                         # 4,096 pixels, over the lowered limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)
    [message] = _errors(_choose_folder(env / "imgs"))
    assert message.startswith(f"Image file '{bomb}' is too large") and "decompression bomb" in message


def test_a_one_class_folder_is_refused_when_chosen_before_any_decoding(env):
    _folder(env / "imgs", {"cats": 3})
    at = _choose_folder(env / "imgs")
    [message] = _errors(at)
    assert "has one class folder ('cats'); a classifier needs at least two classes" in message
    assert not [b for b in at.button if b.key == "exp_run"]            # no run can be queued
    assert not (env / "imgs" / ".drop_cache").exists()                 # refused from the listing, nothing decoded
    assert Store(env / "runs.sqlite").list_runs().empty


# --- messages in the app's words ---------------------------------------------------------------

def test_a_dataset_not_downloaded_says_how_to_download_it_from_the_command_line(env):
    at = _page("experiment")
    at.selectbox(key="exp_dataset").select("cifar10").run()
    at.text_input(key="exp_root").input(str(env / "data")).run()
    [message] = _errors(at)
    assert "CIFAR-10 was not found" in message and "Rerun with --download" not in message
    assert (f"download it once from the command line (python -m drop_core run --dataset cifar10 --data-root "
            f"'{env / 'data'}' --download)") in message
    assert "set the Data folder field to a folder that holds it" in message


def test_a_failed_run_shows_its_recorded_reason_with_the_apps_controls(env):
    store = Store(env / "runs.sqlite")
    config = RunConfig(dataset="gaussians", preset="cpu", device="cpu", quoter="drop", density=0.05,
                       min_per_class=400, query_inits=1, epochs=1)
    with pytest.raises(Exception, match="--min-per-class"):         # the CLI's words, as the store records them
        run_pipeline(config, store=store)
    [rid] = store.list_runs()["id"].tolist()
    at = AppTest.from_file(str(REPO / "app" / "pages" / "experiment.py"), default_timeout=90)
    at.session_state["experiment_job"] = jobs.Job((rid,), (rid,), (), ())
    messages = _errors(at.run())
    [shown] = [m for m in messages if m.startswith(f"Run #{rid} failed")]
    assert "Lower it with Advanced → Minimum samples kept per class (0 is the paper's rule)" in shown
    assert "--min-per-class" not in shown


def test_a_bug_of_ours_is_an_internal_error_with_the_log_of_its_traceback(env, monkeypatch):
    def broken(self, **kwargs):
        raise KeyError("a column we forgot")

    monkeypatch.setattr(Store, "list_runs", broken)
    [message] = _errors(_page("results"))
    log = env / "logs" / "app.log"
    assert message.startswith("internal error: KeyError: 'a column we forgot'") and f"'{log}'" in message
    assert "Traceback (most recent call last)" in log.read_text() and "in broken" in log.read_text()


@pytest.mark.parametrize(("cli", "app"), [
    ("Lower it with --min-per-class (0 is the paper's rule) or raise the density.",
     "Lower it with Advanced → Minimum samples kept per class (0 is the paper's rule) or raise the density."),
    ("training diverged at epoch 3 (loss nan); lower --lr",
     "training diverged at epoch 3 (loss nan); choose another preset or model (the app trains with the preset's "
     "learning rate; python -m drop_core run --lr sets it)"),
    ("no CUDA GPU on this machine; use --device cpu (or auto).", "no CUDA GPU on this machine; choose Device cpu "
     "(or auto)."),
    ("make it writable, or pass --cache-dir (or set $DROP_CACHE) with a writable folder",
     "make it writable, or restart the app with $DROP_CACHE set to a writable folder"),
    ("Rerun to compute it again (or add --force).", "Rerun to compute it again."),
])
def test_app_message_rewrites_cli_flags_into_the_apps_controls(cli, app):
    assert errors.app_message(cli) == app


def test_a_flag_without_an_app_control_says_it_belongs_to_the_command_line():
    text = errors.app_message("Fix: a longer query (--query-epochs N).")
    assert text == "Fix: a longer query (--query-epochs N)." + errors.CLI_ONLY


def test_every_flag_the_mapping_names_is_a_cli_flag_and_every_control_a_widget(env):
    parser = build_parser()
    run = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]
    flags = {o for action in run._actions for o in action.option_strings}
    named = {f for pattern, _ in errors.APP_WORDS for f in re.findall(r"--[a-z][a-z-]*", pattern)}
    assert named and named <= flags, named - flags
    words = " ".join(w for _, w in errors.APP_WORDS)
    controls = set(re.findall(r"Advanced → ([A-Z][a-zA-Z ]+?)(?=:|$| \()", "\n".join(w for _, w in errors.APP_WORDS),
                              re.M))
    controls |= {c for c in ("Data folder", "Device", "Preset") if c in words}
    assert len(controls) == 7, controls
    at = _page("experiment")
    labels = {w.label for kind in ("selectbox", "number_input", "text_input", "slider") for w in getattr(at, kind)}
    assert controls <= labels, controls - labels


@pytest.mark.parametrize("text", [
    "Expected /data/train/<class>/*.png (or .jpg) and /data/test/<class>/*.png.",
    "restart the app with $DROP_STORE/$DROP_CACHE pointing at '/tmp/my_runs/x_y'",
    r"a backslash \ and [brackets](link) # not a heading",
])
def test_messages_show_as_typed_not_as_markdown(text):
    escaped = errors.plain(text)
    assert errors.unplain(escaped) == text
    assert not re.search(r"(?<!\\)[*_$<\[]", escaped)     # nothing left for Markdown/LaTeX to interpret
