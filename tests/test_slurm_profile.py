"""Every short rule names its cluster job group: a rule added without one would be a cluster
job of its own (a queue wait and a start-up for seconds of work), in single-run and in
multi-run configs alike (whose rules are renamed ``<run>__<rule>``)."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml
from conftest import REPO, shipped_controls_workflow

# jobs that are long or wide enough to be cluster jobs of their own, or run on demand / locally
# each reads a whole layer (or runs the network): its own job with its own memory request
# (and semantic_facets: a job that exists only once the semantics checkpoint has run, see below)
# figure_format / compare_figure_format only refuse a figure format outside figures.format at
# planning (rules/figure_rule.smk): they never run, so no cluster job is formed for them
UNGROUPED = {"all", "extract", "encode_topk", "evaluate_layer", "bootstrap_layer", "neuron_figure", "gallery_layer",
             "semantic_facets", "figure_format"}
# multi-run only: the checkpoint and the jobs whose inputs wait for it. Snakemake 9 forms group
# jobs from the jobs it knows before a checkpoint has run, so a figure that needs the class
# hierarchy is a job of its own (rules/figure_rule.smk), in a run and in the comparison
UNGROUPED_COMPARISON = {"runs_semantics", "compare_semantics_table", "compare_semantic_facets", "compare_figure_format"}
GROUPS = {"setup", "analysis", "figures", "visualize"}

DECLARED_GROUPS = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings
overrides, configfiles = json.loads(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
    workflow = api.workflow(resource_settings=ResourceSettings(), snakefile=Path("Snakefile"), workdir=Path("."),
                            config_settings=ConfigSettings(configfiles=configfiles, config=overrides))
    # the group a rule declares (what a cluster executor uses)
    print(json.dumps({rule.name: rule._group for rule in workflow._workflow.rules}))
"""


def declared_groups(workdir=REPO, *configfiles: str, **overrides) -> dict[str, str | None]:
    result = subprocess.run([sys.executable, "-c", DECLARED_GROUPS, json.dumps(overrides), *configfiles],
                            cwd=workdir, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return yaml.safe_load(result.stdout.splitlines()[-1])


def test_every_short_rule_is_in_a_group():
    groups = declared_groups()
    assert {"extract", "ica", "semantics_hierarchy", "fig1_sparsity_flatness"} <= set(groups)
    assert {rule for rule, group in groups.items() if group is None} == UNGROUPED
    assert set(groups.values()) - {None} == GROUPS
    assert groups["patches"] == groups["ica"] == "visualize"
    assert groups["semantics_hierarchy"] == "setup" and groups["semantic_facets"] is None
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert "groups" not in profile  # one place: the rules
    assert {entry.split("=")[0] for entry in profile["group-components"]} <= GROUPS


def test_multi_run_rules_keep_their_groups(tmp_path):
    """The renamed rules of every run of config/controls.yaml are grouped as the single-run
    rules are."""
    workdir, root = shipped_controls_workflow(tmp_path)
    single = declared_groups()
    groups = declared_groups(workdir, "config/controls.yaml", dataset={"root": str(root)})
    runs = yaml.safe_load((REPO / "config" / "controls.yaml").read_text())["runs"]
    prefixes = {rule.split("__")[0] + "__" for rule in groups if "__" in rule}
    assert len(prefixes) == len(runs) >= 2
    for prefix in prefixes:
        for rule, group in single.items():
            assert groups[prefix + rule] == group, (prefix + rule, groups[prefix + rule], group)
    comparison = {rule: group for rule, group in groups.items() if "__" not in rule}
    assert {rule for rule, group in comparison.items() if group is None} == UNGROUPED_COMPARISON | {"all"}
    assert set(comparison.values()) - {None} == {"figures"}
