"""Performance settings rerun nothing (issue 30): no param of any rule, no part of the stores'
config digest; the generated table of which keys rerun what (docs/reference/reruns.md) is read
from the rules' params."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from neurofacets import provenance, rerun_table
from neurofacets.config import with_defaults

REPO = Path(__file__).resolve().parents[1]


def test_the_digest_leaves_out_the_performance_settings_and_nothing_else():
    base = with_defaults({"run": "r", "model": {"arch": "vgg16", "weights": "random:0"},
                          "dataset": {"format": "probes"}, "extraction": {"batch_size": 8, "shards": 1, "workers": 0},
                          "analysis": {}})
    digest = provenance.run_provenance(base)["config_digest"]
    for section, key in provenance.PERFORMANCE_SETTINGS:
        changed = with_defaults(base)
        changed[section][key] = changed[section][key] + 3
        assert provenance.run_provenance(changed)["config_digest"] == digest, (section, key)
    for section, key in (("extraction", "batch_size"), ("extraction", "image_size"), ("model", "weights")):
        changed = with_defaults(base)
        changed[section][key] = changed[section][key] + ("1" if isinstance(changed[section][key], str) else 1)
        assert provenance.run_provenance(changed)["config_digest"] != digest, (section, key)
    # the input is left as it was
    assert "workers" in base["extraction"] and "threads" in base["visualize"]
    assert "workers" not in provenance.without_performance_settings(base)["extraction"]


def test_params_blocks_and_their_keys_are_read_from_rule_text():
    rules = '''
ALIAS = config["analysis"]
TOP_K = ALIAS["top_k"]
SECTIONS = without_performance_settings({k: config[k] for k in ("run", "extraction")})


rule a:
    input:
        config["ignored"]["input"],
    params:
        k=TOP_K,
        nested={"x": config["visualize"]["seed"]},
        made=label(config["extraction"]),
        ex=SECTIONS["extraction"],
    threads: config["visualize"]["threads"]
    script:
        "a.py"


if True:

    rule b:
        params:
            whole=SECTIONS,
        resources:
            mem_mb=config["ignored"]["mem"],
'''
    names = rerun_table.module_names([rules])
    blocks = rerun_table.params_blocks(rules)
    assert set(blocks) == {"a", "b"}
    assert rerun_table.expression_keys(blocks["a"], names) == {
        "analysis.top_k", "visualize.seed", "extraction (through label)", "extraction -perf"}
    assert rerun_table.expression_keys(blocks["b"], names) == {"run", "extraction -perf"}


def test_no_rule_takes_a_performance_setting_as_a_param():
    keys = rerun_table.rule_keys(REPO / "rules")
    assert {"extract", "encode_topk", "ica", "patches", "gallery_layer", "dataset"} <= set(keys)
    assert "analysis.top_k" in keys["encode_topk"] and "extraction.batch_size" not in keys["encode_topk"]
    for rule, read in keys.items():
        for section, key in provenance.PERFORMANCE_SETTINGS:
            assert f"{section}.{key}" not in read, rule
            assert section not in read, f"{rule} takes the whole {section} section, {key} with it"


def _dry_run(workdir: Path, extra_config: str) -> str:
    # --configfile last: it takes every following word as a file
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--configfile", "tests/configs/tiny.yaml",
           extra_config]
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.mark.e2e
def test_changing_workers_or_threads_plans_no_job(tiny_run):
    """The tiny run, complete: extraction.workers and visualize.threads changed, `snakemake -n`
    has nothing to do; extraction.batch_size changed, it reruns the shards."""
    (tiny_run / "faster.yaml").write_text(yaml.safe_dump({"extraction": {"workers": 2}, "visualize": {"threads": 3}}))
    planned = _dry_run(tiny_run, "faster.yaml")
    assert "Nothing to be done" in planned, planned[-3000:]

    (tiny_run / "batch.yaml").write_text(yaml.safe_dump({"extraction": {"batch_size": 5}}))
    planned = _dry_run(tiny_run, "batch.yaml")
    assert "rule extract:" in planned and "Params have changed" in planned, planned[-3000:]
