"""The CLI: one-line errors with exact text, --json output, list/show/export."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from drop_core.cli import main
from drop_core.data import DATASETS
from drop_core.models import MODELS
from drop_core.presets import PRESETS
from drop_core.quotas import QUOTERS
from drop_core.scoring import SCORERS

REPO = Path(__file__).resolve().parents[2]
TINY = ["--dataset", "digits", "--model", "mlp", "--epochs", "2", "--query-inits", "1", "--device", "cpu", "--quiet"]


def _err(capsys, argv, code=1):
    assert main(argv) == code
    out = capsys.readouterr()
    assert out.err.count("\n") == 1, out.err        # exactly one line
    return out.err.rstrip("\n")


@pytest.mark.parametrize("density", ["1.5", "0", "-0.2"])
def test_density_outside_unit_interval(capsys, density):
    assert _err(capsys, ["run", "--density", density, "--no-store"]) == (
        f"error: The 'density' parameter of run must be a float in the range (0.0, 1.0]. Got {float(density)} instead.")


@pytest.mark.parametrize("flag,kind,registry", [("--scorer", "scorer", SCORERS), ("--quoter", "quoter", QUOTERS),
                                                ("--model", "model", MODELS), ("--preset", "preset", PRESETS),
                                                ("--dataset", "dataset", DATASETS)])
def test_unknown_names_list_the_valid_ones(capsys, flag, kind, registry):
    valid = ", ".join(sorted(registry.names()))
    assert _err(capsys, ["run", flag, "nope", "--no-store"]) == f"error: Unknown {kind} 'nope'. Valid {kind}s: {valid}."


def test_missing_paths_are_named(capsys, tmp_path):
    missing = tmp_path / "nowhere"
    assert str(missing) in _err(capsys, ["run", "--dataset", f"imagefolder:{missing}", "--no-store"])
    assert str(missing) in _err(capsys, ["run", "--dataset", "cifar10", "--data-root", str(missing), "--no-store"])
    assert _err(capsys, ["export", str(missing / "out.csv"), "--store", str(tmp_path / "s.sqlite")]) == (
        f"error: Cannot write '{missing / 'out.csv'}': the folder '{missing}' does not exist.")
    store = tmp_path / "s.sqlite"
    assert _err(capsys, ["show", "7", "--store", str(store)]) == (
        f"error: No run with id 7 in '{store}'. List the runs with `python -m drop_core list runs`.")


def test_argument_type_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "--density", "half"])
    assert e.value.code == 2
    assert (
        capsys.readouterr().err == "python -m drop_core run: error: argument --density: invalid float value: 'half'\n"
    )
    assert _err(capsys, ["run", "--seed", "1", "--seeds", "1", "2", "--no-store"]) == (
        "error: Give either --seed or --seeds, not both.")


def test_json_output_and_store_commands(capsys, tmp_path):
    store = str(tmp_path / "s.sqlite")
    argv = ["run", *TINY, "--scorer", "el2n", "--density", "0.5", "--min-per-class", "3", "--json",
            "--store", store, "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    assert {"average_accuracy", "worst_class_accuracy", "class_accuracy", "kept_per_class", "train_size",
            "config", "warnings", "query_cache_hit", "timings", "val_recall", "class_sizes", "test_counts",
            "class_accuracy_ci"} <= set(result)
    for c, (lo, hi) in result["class_accuracy_ci"].items():
        assert lo <= result["class_accuracy"][c] <= hi and result["test_counts"][c] > 0
    assert sorted(result["class_accuracy"]) == [str(k) for k in range(10)]
    assert sum(result["kept_per_class"].values()) == result["train_size"]
    assert result["config"]["scorer"] == "el2n" and "kept_indices" not in result

    assert main(["show", str(result["run_id"]), "--store", store, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "finished" and len(shown["classes"]) == 20     # test + val rows
    test_rows = [row for row in shown["classes"] if row["split"] == "test"]
    assert [row["test_count"] for row in test_rows] == [result["test_counts"][str(k)] for k in range(10)]
    assert all(row["accuracy_lo"] <= row["accuracy"] <= row["accuracy_hi"] for row in test_rows)
    assert main(["show", str(result["run_id"]), "--store", store]) == 0
    assert "accuracy_lo" in capsys.readouterr().out
    assert main(["list", "runs", "--store", store]) == 0
    assert "el2n" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "runs.json"), "--store", store]) == 0
    assert json.loads((tmp_path / "runs.json").read_text())[0]["id"] == result["run_id"]
    assert _err(capsys, ["export", str(tmp_path / "runs.txt"), "--store", store]) == (
        f"error: Cannot tell the export format from '{tmp_path / 'runs.txt'}'; name the file *.csv or *.json, "
        f"or pass --format csv|json.")


def test_list_names_every_registry_entry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for registry in (DATASETS, MODELS, SCORERS, QUOTERS, PRESETS):
        for entry in registry:
            assert f"  {entry.name:<20} {entry.description}" in out


@pytest.mark.slow
def test_module_entry_point_prints_no_traceback():
    done = subprocess.run([sys.executable, "-m", "drop_core", "run", "--scorer", "el2m", "--no-store"],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: Unknown scorer 'el2m'. Valid scorers: ")


def test_every_seed_is_checked_before_the_first_run(capsys, tmp_path):
    assert _err(capsys, ["run", *TINY, "--seeds", "0", "-3", "--store", str(tmp_path / "s.sqlite")]) == (
        "error: The 'seed' parameter of run must be an int in the range [0, inf). Got -3 instead.")
    assert not (tmp_path / "s.sqlite").exists() or "no runs" in _list_runs(tmp_path / "s.sqlite")


def _list_runs(store: Path) -> str:
    return subprocess.run([sys.executable, "-m", "drop_core", "list", "runs", "--store", str(store)],
                          capture_output=True, text=True, cwd=REPO).stdout


@pytest.mark.parametrize("flag", ["--lr", "--weight-decay", "--density"])
@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_non_finite_numbers_are_rejected_at_the_flag(capsys, flag, value):
    with pytest.raises(SystemExit) as e:
        main(["run", f"{flag}={value}", "--no-store"])
    assert e.value.code == 2
    assert capsys.readouterr().err == (f"python -m drop_core run: error: argument {flag}: {value!r} is not a "
                                       f"finite number\n")


@pytest.mark.slow
def test_two_identical_runs_at_once_train_once(tmp_path):
    """The second process follows the first: one row in the store, one training."""
    store = tmp_path / "s.sqlite"
    cmd = [sys.executable, "-m", "drop_core", "run", *TINY, "--epochs", "6", "--store", str(store),
           "--cache-dir", str(tmp_path / "cache"), "--json"]
    procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    results = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
    assert sorted(r["reused"] for r in results) == [False, True]
    assert results[0]["class_accuracy"] == results[1]["class_accuracy"]
    assert len({r["run_id"] for r in results}) == 1
    rows = [line for line in _list_runs(store).splitlines()[1:] if line.strip()]
    assert len(rows) == 1, rows


@pytest.mark.slow
def test_closed_stdout_is_not_a_traceback(tmp_path):
    cmd = (f"{sys.executable} -m drop_core list | head -c 10 >/dev/null; "
           f"{sys.executable} -m drop_core run {' '.join(TINY)} --no-store --json --seeds 0 1 | head -c 1 >/dev/null")
    out = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in out.stderr, out.stderr
