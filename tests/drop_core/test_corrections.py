"""Query schedules, the degenerate-query warning, corrections instead of pruning, and long-tailed data."""
import dataclasses
import logging

import numpy as np
import pytest
import torch

from drop_core import config as C
from drop_core.analysis import config_method_name
from drop_core.cache import Cache
from drop_core.data import load_dataset
from drop_core.data.imbalance import apply_imbalance, imbalanced_counts
from drop_core.errors import DropError
from drop_core.pipeline import RunConfig, corrections, query, resolve, run
from drop_core.quotas import authors_code_quotas, drop_quotas
from drop_core.store import Store
from drop_core.train.trainer import TrainConfig, _loss, train
from tests.drop_core.test_config import other_value

TINY = dict(dataset="digits", model="mlp", preset="cpu", epochs=3, query_inits=1, device="cpu", precision="fp32")
DIGITS_LT10 = [107, 84, 63, 51, 39, 30, 23, 17, 13, 10]     # floor(N_k * 10**(-k/9)) of digits' train split


@pytest.fixture
def spy(monkeypatch):
    """Every training call of the pipeline: (where, train_idx size or None, TrainConfig)."""
    calls = []

    def wrap(where):
        def spy_train(model, data, train_idx, cfg, **kw):
            calls.append((where, None if train_idx is None else len(train_idx), cfg))
            return train(model, data, train_idx, cfg, **kw)
        return spy_train

    monkeypatch.setattr(query, "train", wrap("query"))
    monkeypatch.setattr(corrections, "train", wrap("final"))
    return calls


# --- degenerate query models -------------------------------------------------------------

def test_query_health_flags_chance_level_and_collapsed_predictions():
    healthy = np.diag([50] * 4) + 3
    assert not query.query_health(healthy)["degenerate"]
    collapsed = np.array([[45, 5, 0, 0], [30, 20, 0, 0], [35, 0, 15, 0], [40, 0, 0, 10]])   # predicts class 0
    h = query.query_health(collapsed)
    assert h["degenerate"] and h["top"] == 0 and h["top_share"] == 0.75 and h["top_true"] == 0.25
    assert h["shift"] == pytest.approx(0.5) and h["accuracy"] == pytest.approx(0.45)
    chance = np.full((4, 4), 10) + np.diag([2] * 4)         # uniform predictions, accuracy ~ chance
    h = query.query_health(chance)
    assert h["degenerate"] and h["shift"] == 0 and h["skill"] < query.MIN_SKILL
    msg = query.degenerate_warning("query model init 2 (early schedule, 1 epoch)", collapsed, list("abcd"))
    assert "query model init 2" in msg and "validation accuracy 0.450 (chance 0.250)" in msg
    assert "class 'a' for 75% of the validation samples (true share 25%" in msg
    assert "--query-epochs" in msg and "--query-inits" in msg and "--query-schedule full / reference" in msg
    assert query.degenerate_warning("x", healthy, list("abcd")) is None


def test_a_degenerate_query_is_warned_in_the_result_the_store_and_the_log(tmp_path, caplog):
    store = Store(tmp_path / "s.sqlite")
    bad = RunConfig(**{**TINY, "query_epochs": 1, "lr": 1e-4}, density=0.5)
    with caplog.at_level(logging.WARNING, logger="drop_core"):
        res = run(bad, store=store, cache_dir=tmp_path / "cache")
    (msg,) = [w for w in res.warnings if w.startswith("DEGENERATE QUERY MODEL")]
    assert "query model init 0 (early schedule, 1 epoch)" in msg and "(chance 0.101)" in msg   # largest val class
    assert msg in caplog.text                                              # the CLI's stderr log
    assert msg in store.get_run(res.run_id)["summary"]["warnings"]          # the store (and the app)
    healthy = run(RunConfig(**TINY, density=0.5), cache_dir=tmp_path / "cache")
    assert not [w for w in healthy.warnings if "DEGENERATE" in w]


# --- query schedules ---------------------------------------------------------------------

def test_full_schedule_trains_one_full_length_model_that_full_scorers_share(tmp_path, spy):
    cfg = RunConfig(**TINY, scorer="random", quoter="drop", query_schedule="full", density=0.5)
    a = run(cfg, cache_dir=tmp_path)
    ((where, idx, tcfg),) = [c for c in spy if c[0] == "query"]
    assert idx is None and tcfg.epochs == 3 and tcfg.eval_val_every_epoch and not tcfg.augment
    spy.clear()
    b = run(dataclasses.replace(cfg, scorer="forgetting", query_schedule="early"), cache_dir=tmp_path)
    assert [c[0] for c in spy] == ["final"] and b.query_cache_hit      # the very same query model
    assert a.val_recall == b.val_recall


def test_reference_schedule_is_the_density_1_final_model_trained_once(tmp_path, spy):
    cfg = RunConfig(**TINY, scorer="random", quoter="drop", query_schedule="reference", density=0.5)
    a = run(cfg, cache_dir=tmp_path)
    n = sum(a.class_sizes.values())
    ref = [c for c in spy if c[0] == "query"]
    assert [(idx, t.epochs, t.augment, t.seed) for _, idx, t in ref] == [(n, 3, a.config["augment"], spy[-1][2].seed)]
    spy.clear()
    b = run(dataclasses.replace(cfg, density=0.3), cache_dir=tmp_path)
    assert [c[0] for c in spy] == ["final"] and b.query_cache_hit and b.val_recall == a.val_recall
    spy.clear()
    full = run(dataclasses.replace(cfg, density=1.0, query_schedule="early"), cache_dir=tmp_path)
    assert spy == []                                   # the density-1 final model is the cached reference
    assert full.val_class_accuracy == a.val_recall
    assert a.kept_per_class == dict(zip(a.class_sizes, drop_quotas(
        list(a.class_sizes.values()), list(a.val_recall.values()), 0.5, min_per_class=20).tolist()))


def test_a_scorers_query_models_and_scores_are_the_same_under_every_schedule(tmp_path, spy):
    cfg = RunConfig(**TINY, scorer="el2n", quoter="drop", density=0.5)
    early = run(cfg, cache_dir=tmp_path)
    spy.clear()
    ref = run(dataclasses.replace(cfg, query_schedule="reference"), cache_dir=tmp_path)
    assert [(w, i) for w, i, _ in spy] == [("query", sum(early.class_sizes.values())), ("final", ref.train_size)]
    assert ref.val_recall != early.val_recall and ref.train_size == early.train_size


def test_reference_key_ignores_exactly_what_cannot_change_a_density_1_model():
    rc = resolve(RunConfig(**TINY, scorer="el2n"))[0]
    for f in C.setting_fields():
        changed = dataclasses.replace(rc, **{f: other_value(f, getattr(rc, f))})
        assert (query.reference_key(changed) == query.reference_key(rc)) == (f in query.REFERENCE_FREE), f
    assert set(C.setting_fields()) >= query.REFERENCE_FREE


# --- corrections -------------------------------------------------------------------------

def test_logit_adjust_trains_on_everything_and_shifts_by_the_quoters_densities(tmp_path, spy):
    base = RunConfig(**TINY, scorer="random", quoter="drop", density=0.4)
    pruned = run(base, cache_dir=tmp_path)
    spy.clear()
    adj = run(dataclasses.replace(base, correction="logit_adjust"), cache_dir=tmp_path)
    n = sum(adj.class_sizes.values())
    assert adj.train_size == n and adj.kept_per_class == adj.class_sizes and adj.final_epochs == 3
    assert [(w, i) for w, i, _ in spy] == [("query", n)]      # only the reference model (query.py trains it)
    assert adj.val_recall == pruned.val_recall and config_method_name(adj.config) == "logit adj."
    cfg, _ = resolve(dataclasses.replace(base, correction="logit_adjust"))
    data = load_dataset("digits")
    model, _, trained = query.reference_model(cfg, data, Cache(tmp_path), stage="final", progress=lambda e: None,
                                              should_stop=None)
    assert not trained
    kept = np.array(list(pruned.kept_per_class.values()))
    shift = np.log(kept / data.class_sizes())
    logits = query.predict(model, data.x_test, data, device="cpu", precision="fp32")
    pred = (logits + torch.as_tensor(shift, dtype=logits.dtype)).argmax(1).numpy()
    assert adj.average_accuracy == float((pred == data.y_test.numpy()).mean())
    unshifted = float((logits.argmax(1).numpy() == data.y_test.numpy()).mean())
    full = run(dataclasses.replace(base, density=1.0), cache_dir=tmp_path)
    assert full.average_accuracy == unshifted


def test_cdbw_trains_everything_with_class_weights_and_no_query_model(tmp_path, spy):
    res = run(RunConfig(**TINY, scorer="el2n", quoter="drop", density=0.05, correction="cdbw"), cache_dir=tmp_path)
    ((where, idx, tcfg),) = spy
    assert where == "final" and tcfg.cdbw and idx == res.train_size == sum(res.class_sizes.values())
    assert res.val_recall == {} and config_method_name(res.config) == "CDB-W"


def test_cdbw_weights_start_uniform_and_then_change_training():
    data = load_dataset("digits")

    def weights_after(epochs, cdbw):
        model = query.new_model("mlp", data, 0)
        train(model, data, None, TrainConfig(epochs=epochs, batch_size=128, lr=0.05, precision="fp32", augment=False,
                                             cdbw=cdbw, schedule="constant"))
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(weights_after(1, True), weights_after(1, False))      # first epoch: uniform weights
    assert not torch.equal(weights_after(2, True), weights_after(2, False))


def test_weighted_loss_of_a_batch_of_weight_zero_is_zero_not_nan():
    logits, y = torch.randn(4, 3, requires_grad=True), torch.tensor([0, 0, 1, 1])
    loss = _loss(logits, y, 0.0, torch.tensor([0.0, 0.0, 1.0]))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    w = torch.tensor([0.5, 2.0, 1.0])
    expected = torch.nn.functional.cross_entropy(logits, y, weight=w)
    assert _loss(logits, y, 0.0, w).item() == pytest.approx(expected.item())


@pytest.mark.parametrize("field, value, expected", [
    ("correction", "logit", "The 'correction' parameter of run must be one of none, logit_adjust, cdbw. "
                            "Got 'logit' instead."),
    ("query_schedule", "late", "The 'query_schedule' parameter of run must be one of early, full, reference. "
                               "Got 'late' instead."),
    ("imbalance", 0.5, "The 'imbalance' parameter of run must be a float in the range [1.0, inf). Got 0.5 instead."),
])
def test_bad_values_give_the_template_error(field, value, expected):
    with pytest.raises(DropError) as e:
        resolve(RunConfig(**{**TINY, field: value}))
    assert str(e.value) == expected


# --- long-tailed data --------------------------------------------------------------------

def test_imbalance_keeps_the_exponential_profile_of_the_training_split_only():
    data = load_dataset("digits")
    lt = apply_imbalance(data, 10.0)
    assert lt.class_sizes().tolist() == DIGITS_LT10
    assert imbalanced_counts([5000] * 10, 100).tolist() == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert torch.equal(lt.x_val, data.x_val) and torch.equal(lt.y_test, data.y_test)
    again = apply_imbalance(load_dataset("digits"), 10.0)                    # no seed involved: the same samples
    assert torch.equal(again.x_train, lt.x_train)
    assert apply_imbalance(data, 1.0) is data
    with pytest.raises(DropError, match=r"The 'imbalance' parameter of run must be a float in the range \[1.0, 10"):
        apply_imbalance(data, 1000.0)


def test_algorithm_1_and_the_authors_code_differ_on_long_tailed_data():
    recall = np.full(10, 0.8)                     # equal difficulty: Algorithm 1 keeps class proportions
    assert drop_quotas(DIGITS_LT10, recall, 0.5).tolist() == [54, 42, 32, 26, 19, 15, 11, 8, 7, 5]
    assert authors_code_quotas(DIGITS_LT10, recall, 0.5).tolist() == [26, 26, 26, 26, 26, 26, 23, 17, 13, 10]


def test_both_quoters_on_an_imbalanced_run_follow_their_rules(tmp_path):
    cfg = RunConfig(**TINY, imbalance=10.0, min_per_class=0, density=0.5)
    a = run(cfg, cache_dir=tmp_path)
    b = run(dataclasses.replace(cfg, quoter="drop_authors"), cache_dir=tmp_path)
    assert list(a.class_sizes.values()) == DIGITS_LT10 and a.config["imbalance"] == 10.0
    assert b.query_cache_hit and a.val_recall == b.val_recall
    recall = list(a.val_recall.values())
    assert list(a.kept_per_class.values()) == drop_quotas(DIGITS_LT10, recall, 0.5).tolist()
    assert list(b.kept_per_class.values()) == authors_code_quotas(DIGITS_LT10, recall, 0.5).tolist()
    assert a.kept_per_class != b.kept_per_class
