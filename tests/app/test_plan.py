"""Parsing the densities field and expanding a comparison into run configs."""
import pytest

from app.plan import comparison_configs, parse_densities
from drop_core.errors import DropError
from drop_core.pipeline import RunConfig


def test_parse_densities_sorts_and_drops_repeats():
    assert parse_densities(" 0.5, 0.3;0.5 ,") == [0.3, 0.5]
    assert parse_densities("1") == [1.0]


@pytest.mark.parametrize("text, message", [
    ("0.5, 1.5", "The 'density' parameter must be a float in the range (0.0, 1.0]. Got 1.5 instead."),
    ("0", "The 'density' parameter must be a float in the range (0.0, 1.0]. Got 0 instead."),
    ("half", "The 'densities' field must list numbers separated by commas, such as 0.3, 0.5. Got 'half' instead."),
    (" , ", "The 'densities' field is empty: give at least one density in (0.0, 1.0], such as 0.5."),
])
def test_parse_densities_rejects_bad_input_with_a_clear_message(text, message):
    with pytest.raises(DropError) as err:
        parse_densities(text)
    assert str(err.value) == message


def test_comparison_puts_full_data_first_and_groups_runs_sharing_a_query_model():
    base = RunConfig(dataset="gaussians", epochs=3)
    configs = comparison_configs(base, scorers=["random", "el2n"], quoters=["none", "drop"], densities=[0.3, 0.5],
                                 seeds=[0, 1], full_data=True)
    assert len(configs) == 2 + 2 * 2 * 2 * 2
    assert [(c.density, c.quoter, c.seed) for c in configs[:2]] == [(1.0, "none", 0), (1.0, "none", 1)]
    assert [c.scorer for c in configs[2:]] == ["random"] * 8 + ["el2n"] * 8
    assert all(c.epochs == 3 and c.dataset == "gaussians" for c in configs)


def test_comparison_has_no_repeats():
    base = RunConfig(dataset="gaussians")
    configs = comparison_configs(base, scorers=["random"], quoters=["none"], densities=[1.0], seeds=[0],
                                 full_data=True)
    assert configs == [RunConfig(dataset="gaussians", scorer="random", quoter="none", density=1.0, seed=0)]
