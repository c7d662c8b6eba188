"""Print the rules of the workflow as Snakemake parsed them, as JSON (used by the tests).

    python tests/workflow_rules.py WORKDIR [CONFIGFILE ...]

Parses the workflow in WORKDIR (its Snakefile, with the given config files on top of
config/config.yaml) without building anything, and prints one object per rule: its named
and unnamed inputs (input functions as ``"<function>"``), outputs with their report
caption, category and subcategory, params, log, benchmark, script and memory request.
Run in a subprocess: the Snakemake API changes the working directory.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _value(item: Any) -> Any:
    if callable(item):
        return "<function>"
    if isinstance(item, (int, float)):
        return item
    if isinstance(item, (list, tuple)):
        return [_value(v) for v in item]
    text = str(item)
    return "<function>" if text.startswith("<function ") else text


def _resource(resource: Any) -> Any:
    """A resource's value, or ``"<function>"`` for one computed per job."""
    if resource is None:
        return None
    return "<function>" if resource.is_evaluable() else resource.value


def _named(files: Any) -> dict[str, Any]:
    """A Snakemake Namedlist's named entries (name -> path or list of paths)."""
    return {name: _value(files[name]) for name in files.keys()}


def _output(path: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": str(path)}
    flags = getattr(path, "flags", {})
    if "report" in flags:
        report = flags["report"]
        entry.update(caption=str(report.caption), category=report.category, subcategory=report.subcategory)
    return entry


def rule_table(workdir: Path, configfiles: list[Path]) -> list[dict[str, Any]]:
    """Every rule of the workflow in ``workdir`` parsed with ``configfiles``."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(configfiles=[p.absolute() for p in configfiles]),
            snakefile=workdir / "Snakefile",
            workdir=workdir,
        )
        workflow = workflow_api._workflow  # the parsed workflow; the API has no public accessor
        return [
            {
                "name": rule.name,
                "input": _named(rule.input),
                "input_all": [_value(item) for item in rule.input],
                "output": [_output(path) for path in rule.output],
                "params": {name: _value(rule.params[name]) if not isinstance(rule.params[name], dict)
                           else rule.params[name] for name in rule.params.keys()},
                "log": [str(path) for path in rule.log],
                "benchmark": str(rule.benchmark) if rule.benchmark else None,
                "script": rule.script,
                "mem_mb": _resource(rule.resources.get("mem_mb")),
            }
            for rule in workflow.rules
        ]


if __name__ == "__main__":
    json.dump(rule_table(Path(sys.argv[1]).absolute(), [Path(p) for p in sys.argv[2:]]), sys.stdout, indent=1)
