"""profiles/slurm groups every short job: a rule added without a group would be a cluster job
of its own (a queue wait and a start-up for seconds of work)."""

from __future__ import annotations

import subprocess
import sys

import yaml
from conftest import REPO

# jobs that are long or wide enough to be cluster jobs of their own, or run on demand / locally
UNGROUPED = {"all", "extract", "encode_topk", "neuron_figure", "gallery_layer"}


def test_every_short_rule_is_in_a_group():
    listed = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules", "--workflow-profile", "none"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    rules = {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert {"extract", "ica", "semantics_hierarchy", "fig1_sparsity_flatness"} <= rules
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    groups = dict(entry.split("=") for entry in profile["groups"])
    assert not set(groups) - rules, f"groups name rules that do not exist: {sorted(set(groups) - rules)}"
    assert rules - UNGROUPED == set(groups), f"rules in no group: {sorted(rules - UNGROUPED - set(groups))}"
