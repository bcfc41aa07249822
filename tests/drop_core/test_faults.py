"""Fault injection: each fault is made for real (truncated, empty or bit-flipped files, permissions,
foreign databases, a second process, a killed process, a generated decompression bomb) and each
test checks the one-line message and that nothing was lost or duplicated.

Tests may run as root, where ``chmod`` does not stop writes: read-only files and folders come from
the ``read_only`` fixture (``chattr +i``, which stops root too); only an unreadable file cannot be
made for root, and that case skips with the reason.
"""
import errno
import hashlib
import logging
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drop_core.cache import Cache
from drop_core.data import folders, load_dataset
from drop_core.data.identity import data_identity, resolve_dataset_name
from drop_core.errors import DropError, user_error
from drop_core.store import Store, process_alive

REPO = Path(__file__).resolve().parents[2]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_non_root = pytest.mark.skipif(IS_ROOT, reason="running as root: chmod does not stop root from writing")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _flip(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x40
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _zero(path: Path) -> None:
    path.write_bytes(b"")


# ------------------------------------------------------------------------ query/score cache

@pytest.mark.parametrize("damage", [_truncate, _zero, _flip], ids=["truncated", "zero-byte", "bit-flip"])
def test_damaged_cache_entry_is_warned_once_deleted_and_recomputed(tmp_path, caplog, damage):
    cache = Cache(tmp_path)
    arrays = {"scores": np.arange(5000, dtype=np.float64)}
    path = cache.save("scores", "k", "scores", arrays, {"seconds": 1.5})
    damage(path)
    with caplog.at_level(logging.WARNING, logger="drop_core.cache"):
        assert cache.load("scores", "k", "scores") is None
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith(f"The cache file '{path}' is damaged (")
    assert lines[0].endswith("deleting it and recomputing.") and not path.exists()
    cache.save("scores", "k", "scores", arrays, {"seconds": 1.5})           # the caller recomputes
    loaded, meta = cache.load("scores", "k", "scores")
    assert np.array_equal(loaded["scores"], arrays["scores"]) and meta == {"seconds": 1.5}
    assert sorted(p.name for p in path.parent.iterdir()) == ["scores.npz"]  # no temporary file left


def test_flip_in_any_member_byte_is_caught_by_the_crc(tmp_path, caplog):
    cache = Cache(tmp_path)
    path = cache.save("query", "k", "init0", {"a": np.arange(300, dtype=np.int16)}, {"x": 1})
    good = path.read_bytes()
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
    for info in infos:                           # every data byte of each member (after its local header)
        name_len, extra_len = struct.unpack("<HH", good[info.header_offset + 26:info.header_offset + 30])
        start = info.header_offset + 30 + name_len + extra_len
        for pos in range(start, start + info.compress_size, 7):
            data = bytearray(good)
            data[pos] ^= 0x01
            path.write_bytes(bytes(data))
            assert cache.load("query", "k", "init0") is None, f"flip at byte {pos} went unnoticed"


def test_unwritable_cache_folder_is_found_before_any_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(DropError) as err:
        Cache(blocker / "cache").check_writable()
    assert str(err.value).startswith(f"The cache folder '{blocker / 'cache'}' is not writable (")
    assert "--cache-dir" in str(err.value) and blocker.read_text() == "x"
    Cache(tmp_path / "fine").check_writable()                   # a good folder passes and keeps no probe file
    assert list((tmp_path / "fine").iterdir()) == []


def test_read_only_cache_folder_is_found_before_any_training(tmp_path, read_only):
    folder = tmp_path / "cache"
    folder.mkdir()
    read_only(folder)
    with pytest.raises(DropError, match="is not writable"):
        Cache(folder).check_writable()


# ------------------------------------------------------------------------ image folders

def _folder(root: Path, per_class: dict, size=(8, 8), split_sizes=("train", "test")) -> None:
    for split in split_sizes:
        for k, name in enumerate(per_class):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(per_class[name]):
                pixels = np.random.default_rng(100 * k + i).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i:03d}.png")


@pytest.mark.parametrize("damage", [_truncate, _zero, _flip], ids=["truncated", "zero-byte", "bit-flip"])
def test_damaged_decode_cache_is_warned_and_decoded_again(tmp_path, caplog, damage):
    _folder(tmp_path, {"a": 2, "b": 2})
    first = load_dataset(f"imagefolder:{tmp_path}")
    entries = sorted((tmp_path / ".drop_cache").glob("*.npz"))
    train_entry = next(p for p in entries if "-train-" in p.name)
    damage(train_entry)
    with caplog.at_level(logging.WARNING, logger="drop_core"):
        again = load_dataset(f"imagefolder:{tmp_path}")
    warned = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(warned) == 1 and f"'{train_entry}'" in warned[0]
    assert np.array_equal(first.x_train.numpy(), again.x_train.numpy())           # nothing lost
    assert sorted((tmp_path / ".drop_cache").glob("*.npz")) == entries             # replaced, not duplicated
    assert sorted(p.name for p in (tmp_path / ".drop_cache").iterdir()) == [p.name for p in entries]


def test_generated_decompression_bomb_is_named(tmp_path, monkeypatch):
    _folder(tmp_path, {"a": 2, "b": 2})
    bomb = tmp_path / "train" / "b" / "001.png"
    Image.new("L", (64, 64)).save(bomb)                           # 4,096 pixels: tiny on disk
    for limit in (3000, 1000):          # over the limit (Pillow would only warn), and over twice it (Pillow errors)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(DropError) as err:
            folders.decode_images(folders.scan_class_folders(tmp_path / "train")[1])
        assert str(err.value).startswith(f"Image file '{bomb}' is too large (")
        assert "decompression bomb" in str(err.value) and "\n" not in str(err.value)


def test_bad_file_is_reported_before_the_whole_array_is_allocated(tmp_path, monkeypatch):
    _folder(tmp_path, {"a": 3, "b": 3})
    files = folders.scan_class_folders(tmp_path / "train")[1]
    files[-1].write_bytes(files[-1].read_bytes()[:40])            # the last image is truncated
    shapes = []
    real_empty = np.empty
    monkeypatch.setattr(folders, "DECODE_CHUNK", 2)
    monkeypatch.setattr(folders.np, "empty", lambda shape, *a, **k: shapes.append(shape) or real_empty(shape, *a, **k))
    with pytest.raises(DropError) as err:
        folders.decode_images(files, threads=1)
    monkeypatch.undo()
    assert str(err.value).startswith(f"Cannot decode image file '{files[-1]}' (")
    assert all(s[0] < len(files) for s in shapes)                 # only chunk buffers, never (N, C, H, W)


def test_images_too_large_to_hold_are_refused_before_decoding(tmp_path, monkeypatch):
    _folder(tmp_path, {"a": 2, "b": 2})
    monkeypatch.setattr(folders, "_memory_bytes", lambda: 100)    # a machine with 100 bytes of memory
    opened = []
    real_open = folders._open_image
    monkeypatch.setattr(folders, "_open_image", lambda p, m: opened.append(p) or real_open(p, m))
    with pytest.raises(DropError) as err:
        folders.decode_images(folders.scan_class_folders(tmp_path / "train")[1])
    assert "would take" in str(err.value) and "GiB decoded, more than this machine's" in str(err.value)
    assert len(opened) == 1                                        # only the first image, to learn the size


def test_unreadable_image_file_is_named(tmp_path):
    _folder(tmp_path, {"a": 2, "b": 2})
    dangling = tmp_path / "train" / "a" / "002.png"
    dangling.symlink_to(tmp_path / "gone.png")                     # unreadable for root too
    with pytest.raises(DropError) as err:
        load_dataset(f"imagefolder:{tmp_path}")
    assert str(err.value).startswith(f"Cannot read image file '{dangling}' (No such file or directory)")


@needs_non_root
def test_image_without_read_permission_is_named(tmp_path):
    _folder(tmp_path, {"a": 2, "b": 2})
    locked = tmp_path / "train" / "a" / "001.png"
    locked.chmod(0o000)
    try:
        with pytest.raises(DropError, match=f"Cannot read image file '{locked}' \\(Permission denied\\)"):
            load_dataset(f"imagefolder:{tmp_path}")
    finally:
        locked.chmod(0o644)


def test_nested_folders_inside_a_class_are_read_and_hidden_files_skipped(tmp_path):
    _folder(tmp_path, {"a": 2, "b": 2})
    nested = tmp_path / "train" / "b" / "more"
    nested.mkdir()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(nested / "x.png")
    (tmp_path / "train" / "a" / "._000.png").write_bytes(b"AppleDouble")   # macOS metadata, not an image
    data = load_dataset(f"imagefolder:{tmp_path}")
    assert data.y_train.tolist() == [0, 0, 1, 1, 1]
    assert data.x_train[-1].float().mean().item() == 9.0                   # the nested image, last in path order


def test_one_class_folder_says_a_classifier_needs_two(tmp_path):
    _folder(tmp_path, {"only": 3})
    with pytest.raises(DropError) as err:
        load_dataset(f"imagefolder:{tmp_path}")
    assert str(err.value) == (f"'{tmp_path / 'train'}' has one class folder ('only'); a classifier needs at least "
                              f"two classes. Add another class folder (train/<class>/ and test/<class>/).")


# ------------------------------------------------------------------------ data identity

def test_identity_changes_with_the_data_and_not_with_the_cache(tmp_path, monkeypatch):
    _folder(tmp_path / "one", {"a": 2, "b": 2})
    _folder(tmp_path / "two", {"a": 2, "b": 2})
    monkeypatch.chdir(tmp_path / "one")
    assert resolve_dataset_name("imagefolder:.") == f"imagefolder:{tmp_path / 'one'}"
    here = data_identity("imagefolder:.", None)
    assert here["imagefolder"] == str(tmp_path / "one") and here["files"] == 8
    monkeypatch.chdir(tmp_path / "two")
    assert data_identity("imagefolder:.", None) != here            # same string, other folder
    monkeypatch.chdir(tmp_path)
    before = data_identity("imagefolder:one", None)
    load_dataset("imagefolder:one")                                # writes one/.drop_cache
    assert data_identity("imagefolder:one", None) == before
    img = tmp_path / "one" / "train" / "a" / "000.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(img)                   # same count of files, new content
    assert data_identity("imagefolder:one", None) != before
    assert data_identity("digits", None) == {"dataset": "digits"}


def test_torchvision_identity_fingerprints_only_that_dataset(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"x")
    before = data_identity("cifar10", str(tmp_path))
    assert before["root"] == str(tmp_path) and before["files"] == 1
    (tmp_path / "MNIST").mkdir()
    (tmp_path / "MNIST" / "new").write_bytes(b"y")                  # another dataset under the same root
    assert data_identity("cifar10", str(tmp_path)) == before
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"xx")
    assert data_identity("cifar10", str(tmp_path)) != before


# ------------------------------------------------------------------------ the store

def _no_side_files(path: Path) -> bool:
    return not any(path.with_name(path.name + s).exists() for s in ("-wal", "-shm", "-journal"))


def test_file_that_is_not_sqlite_is_refused_untouched(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_text("my notes, not a database\n")
    before = _digest(path)
    with pytest.raises(DropError) as err:
        Store(path)
    assert str(err.value) == (f"{str(path)!r} is not a SQLite database, so it is not a results store; it was left "
                              f"untouched. Move it away or pass --store (or set $DROP_STORE) with another path.")
    assert _digest(path) == before and _no_side_files(path)


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_sqlite_database_of_another_program_is_never_written(tmp_path, journal):
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA journal_mode={journal}")
    db.execute("CREATE TABLE notes (body TEXT)")
    db.execute("INSERT INTO notes VALUES ('keep me')")
    db.commit()
    db.close()
    before = _digest(path)
    with pytest.raises(DropError) as err:
        Store(path)
    assert f"{str(path)!r} is a SQLite database of another program (tables: notes)" in str(err.value)
    assert _digest(path) == before and _no_side_files(path)
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["notes"]
    db.close()


@pytest.mark.slow
def test_cli_list_on_a_foreign_database_is_one_line_and_writes_nothing(tmp_path):
    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.commit()
    before = _digest(path)
    out = subprocess.run([sys.executable, "-m", "drop_core", "list", "runs", "--store", str(path)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "another program" in out.stderr
    assert "Traceback" not in out.stderr and _digest(path) == before and _no_side_files(path)


def test_store_under_a_regular_file_is_refused(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(DropError) as err:
        Store(blocker / "drop.sqlite")
    assert str(err.value) == (f"Cannot create the results store {str(blocker / 'drop.sqlite')!r}: {str(blocker)!r} "
                              f"is a file, not a folder; pass --store (or set $DROP_STORE) with another path.")
    assert blocker.read_text() == "a file where a folder should be"


@pytest.mark.parametrize("what", ["file", "folder"])
def test_read_only_store_is_refused(tmp_path, what, read_only):
    path = tmp_path / "s" / "drop.sqlite"
    Store(path).create_run({"a": 1}, "k")
    unlock = read_only(path if what == "file" else path.parent)
    with pytest.raises(DropError, match=f"is read-only \\(its {what}\\)"):
        Store(path)
    unlock()
    assert len(Store(path).list_runs()) == 1


def test_store_of_the_first_version_migrates_and_keeps_its_runs(tmp_path):
    path = tmp_path / "old.sqlite"
    from drop_core.store.schema import _m001_initial

    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL)")
    _m001_initial(db)
    db.execute("INSERT INTO _migrations VALUES ('m001_initial', 'then')")
    db.execute("INSERT INTO runs (key, status, config, created, summary, timings) VALUES ('k', 'finished', '{}', "
               "'then', '{\"average_accuracy\": 0.75, \"worst_class_accuracy\": 0.5, \"train_size\": 4}', '{}')")
    db.execute("INSERT INTO class_metrics VALUES (1, 'test', 0, 'a', 0.5, 4, 2, NULL)")
    db.execute("INSERT INTO class_metrics VALUES (1, 'test', 1, 'b', 1.0, 4, 2, NULL)")
    db.close()
    store = Store(path)
    assert store.applied_migrations() == ["m001_initial", "m002_followers", "m003_test_counts"]
    assert store.get_run(1)["status"] == "finished" and store.get_run(1)["followers"] == 0
    assert store.class_metrics([1])["test_count"].isna().all()
    from drop_core.pipeline import RunResult

    old = RunResult.from_store(store, 1)        # a run stored before test counts: no interval, no error
    assert old.class_accuracy == {"a": 0.5, "b": 1.0} and old.test_counts == {} and old.class_accuracy_ci == {}


_CLAIMER = textwrap.dedent("""
    import sys, time
    from drop_core.store import Store
    store = Store(sys.argv[1])
    rid, state = store.claim_run({"density": 0.5}, "same-key", start=True)
    print(rid, state, flush=True)
    time.sleep(float(sys.argv[2]))
    store.save_result(rid, {"class_accuracy": {"a": 0.5, "b": 1.0}, "average_accuracy": 0.75, "timings": {}})
""")


def _claimer(store_path: Path, seconds: float) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", _CLAIMER, str(store_path), str(seconds)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    rid, state = proc.stdout.readline().split()
    assert state == "created"
    return proc, int(rid)


def test_second_identical_run_follows_the_first_process(tmp_path):
    path = tmp_path / "drop.sqlite"
    proc, rid = _claimer(path, 1.0)
    store = Store(path)
    assert store.claim_run({"density": 0.5}, "same-key", start=True, follow=True) == (rid, "active")
    assert store.get_run(rid)["followers"] == 1
    seen = []
    assert store.wait_for(rid, poll=0.05, on_wait=lambda run: seen.append(run["status"])) == "finished"
    assert proc.wait(timeout=30) == 0 and seen == ["running"]
    runs = store.list_runs()
    assert len(runs) == 1 and runs.loc[0, "average_accuracy"] == 0.75          # one row, trained once


def test_follower_stops_waiting_when_the_first_process_is_killed(tmp_path):
    path = tmp_path / "drop.sqlite"
    proc, rid = _claimer(path, 60.0)
    store = Store(path)
    assert store.claim_run({"density": 0.5}, "same-key", start=True)[1] == "active"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not process_alive(proc.pid)
    t0 = time.monotonic()
    assert store.wait_for(rid, poll=0.05, timeout=30) == "interrupted" and time.monotonic() - t0 < 10
    assert store.claim_run({"density": 0.5}, "same-key", start=True)[1] == "created"   # a rerun computes it


def test_worker_pid_on_the_row_marks_its_queued_runs_interrupted_when_it_dies(tmp_path):
    store = Store(tmp_path / "drop.sqlite")
    rid, state = store.claim_run({"a": 1}, "k")
    assert state == "created" and store.get_run(rid)["status"] == "queued"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.assign_worker([rid], dead.pid)
    assert store.mark_interrupted() == [rid] and store.get_run(rid)["status"] == "interrupted"


def test_latest_event_of_stages_skips_other_events(tmp_path):
    store = Store(tmp_path / "drop.sqlite")
    rid = store.create_run({}, "k")
    store.add_event(rid, {"stage": "query", "epoch": 2})
    store.add_event(rid, {"stage": "warning", "message": "w"})
    assert store.latest_event(rid)["stage"] == "warning"
    assert store.latest_event(rid, stages=("query", "final"))["epoch"] == 2
    assert store.latest_event(rid, stages=("final",)) is None


# ------------------------------------------------------------------------ export

def test_export_onto_a_folder_is_refused_and_leaves_nothing(tmp_path):
    store = Store(tmp_path / "drop.sqlite")
    store.create_run({"a": 1}, "k")
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(DropError) as err:
        store.export(target, "csv")
    assert str(err.value) == (f"Cannot export to {str(target)!r}: it is a folder; give a file path such as "
                              f"{str(target / 'runs.csv')!r}.")
    assert list(target.iterdir()) == [] and not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*tmp"))


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc (not writable, even for root)")
def test_export_into_an_unwritable_folder_is_one_line(tmp_path):
    store = Store(tmp_path / "drop.sqlite")
    with pytest.raises(DropError) as err:
        store.export("/proc/runs.csv", "csv")
    assert str(err.value).startswith("Cannot write '/proc/runs.csv': the folder '/proc' is not writable (")
    assert not Path("/proc/runs.csv").exists()


def test_export_into_a_read_only_folder_leaves_no_temporary_file(tmp_path, read_only):
    store = Store(tmp_path / "drop.sqlite")
    folder = tmp_path / "ro"
    folder.mkdir()
    read_only(folder)
    with pytest.raises(DropError, match="is not writable"):
        store.export(folder / "runs.json", "json")
    assert list(folder.iterdir()) == []


# ------------------------------------------------------------------------ errors.user_error

def _raised(fn) -> BaseException:
    try:
        fn()
    except BaseException as e:      # noqa: BLE001 - the test wants the real exception object
        return e
    raise AssertionError("no exception")


def test_user_error_maps_real_faults_and_names_the_file(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "text.db").write_text("not sqlite at all, just text........")
    (tmp_path / "empty.npy").write_bytes(b"")
    cases = {
        "not a folder": _raised(lambda: (tmp_path).read_bytes()),
        "parents are folders": _raised(lambda: (tmp_path / "f" / "g").read_bytes()),
        "check the path": _raised(lambda: (tmp_path / "missing").read_bytes()),
        "not a DRoP Explorer store": _raised(
            lambda: sqlite3.connect(tmp_path / "text.db").execute("SELECT * FROM sqlite_master")),
        "zip or .npz file is damaged": _raised(lambda: zipfile.ZipFile(tmp_path / "f")),
        "ended too early": _raised(lambda: np.load(tmp_path / "empty.npy")),
        "Cannot read an image": _raised(lambda: Image.open(tmp_path / "f")),
        "Out of memory": MemoryError(),
    }
    for words, exc in cases.items():
        err = user_error(exc)
        assert isinstance(err, DropError) and words in str(err) and "\n" not in str(err), (words, exc, err)
    assert f"'{tmp_path / 'missing'}'" in str(user_error(cases["check the path"]))
    bomb = Image.DecompressionBombError("Image size (10 pixels) exceeds limit")
    assert "decompression bomb" in str(user_error(bomb))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full for a real 'no space left'")
def test_user_error_for_a_full_disk_says_to_free_space():
    def write():
        with open("/dev/full", "wb") as f:
            f.write(b"x")
    err = user_error(_raised(write))
    assert err is not None and "No space left on device" in str(err) and "free some space" in str(err)


def test_user_error_leaves_our_own_bugs_alone(tmp_path):
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute("CREATE TABLE t (x PRIMARY KEY)")
    db.execute("INSERT INTO t VALUES (1)")
    integrity = _raised(lambda: db.execute("INSERT INTO t VALUES (1)"))
    for exc in (ValueError("bad"), KeyError("k"), TypeError("t"), integrity, sqlite3.ProgrammingError("p"),
                BrokenPipeError(errno.EPIPE, "Broken pipe")):
        assert user_error(exc) is None, exc
    same = DropError("already one line")
    assert user_error(same) is same
