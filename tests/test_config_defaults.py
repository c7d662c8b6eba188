"""Every configuration default is written once, in src/neurofacets/config_schema.yaml.

- every optional key of the schema has a ``default`` (and a description), and the default is
  a valid value of the key;
- a config of only the required keys validates and gets every default, at every depth,
  per run too (``runs``); those defaults are config/config.yaml's values (where they differ
  the test says why);
- the rules (and the Snakefile) read no config key with ``.get`` or ``in``: they index the
  validated config; package code and workflow scripts read no optional key with ``.get``;
- library keyword defaults that mirror a config default equal the schema's.
"""

from __future__ import annotations

import ast
import copy
import inspect
import re
import subprocess
import sys
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from neurofacets.config import (
    SCHEMA_PATH,
    ConfigError,
    load_schema,
    run_configs,
    schema_default,
    validate_config,
    with_defaults,
)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = load_schema(REPO / "src" / "neurofacets" / "config_schema.yaml")
CONFIG_YAML = yaml.safe_load((REPO / "config" / "config.yaml").read_text())

#: Optional keys without a schema default (none: the list stays for a key added before its
#: default; the test fails as soon as a listed key gets one).
PENDING_DEFAULTS: set[str] = set()

#: Keys whose config/config.yaml value differs from the schema default, and why (none: a
#: demo setting there would leak into every config merged over it, issue 27; the probe
#: count is dataset.probes.images_per_class, whose default is the demo's 24).
CONFIG_YAML_DIFFERS: dict[str, Any] = {}


# ------------------------------------------------------------------------------ the schema

def schema_keys(schema: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Mapping[str, Any], bool]]:
    """(dotted key, its schema, required?) of every key, objects' keys included, depth first."""
    required = set(schema.get("required", []))
    for name, sub in schema.get("properties", {}).items():
        key = f"{prefix}{name}"
        yield key, sub, name in required
        yield from schema_keys(sub, f"{key}.")


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists are values."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def required_only(config: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """The part of ``config`` the schema requires (what a user cannot leave out)."""
    out = {}
    for name in schema.get("required", []):
        value = config[name]
        sub = schema["properties"][name]
        out[name] = required_only(value, sub) if sub.get("type") == "object" else copy.deepcopy(value)
    return out


def set_key(config: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        config = config.setdefault(part, {})
    config[last] = value


def test_the_package_reads_the_workflow_schema():
    assert SCHEMA_PATH == REPO / "src" / "neurofacets" / "config_schema.yaml"


def test_every_optional_key_has_a_valid_default_and_a_description():
    missing, undescribed = set(), set()
    for key, sub, required in schema_keys(SCHEMA):
        if required:
            assert "default" not in sub, f"{key}: a required key has no use for a default"
            continue
        if "default" not in sub:
            missing.add(key)
            continue
        if "description" not in sub:
            undescribed.add(key)
        # the default is a value the key accepts (a default object: once its own keys are filled)
        default = copy.deepcopy(sub["default"])
        if isinstance(default, dict):
            validate_config(default, sub)  # an object's default, once its own keys get theirs
        else:
            assert not list(jsonschema.Draft202012Validator(sub).iter_errors(default)), f"{key}: {default!r}"
    assert missing == PENDING_DEFAULTS, (
        f"optional keys without a default: {sorted(missing - PENDING_DEFAULTS)}; "
        f"listed as pending but have one now (remove them from PENDING_DEFAULTS): {sorted(PENDING_DEFAULTS - missing)}"
    )
    assert not undescribed, f"defaults without a description: {sorted(undescribed)}"


def test_config_yaml_states_every_key():
    """config/config.yaml is the documented default: it lists every key of the schema."""
    stated = set(flatten(CONFIG_YAML))
    leaves = {key for key, sub, _ in schema_keys(SCHEMA) if "properties" not in sub}
    assert leaves - stated == set(), "keys missing from config/config.yaml"
    assert stated - leaves == set(), "config/config.yaml keys the schema does not know"


def test_required_keys_alone_validate_and_get_config_yaml_values():
    """A config of only the required keys gets every default, and they are config.yaml's values."""
    minimal = required_only(CONFIG_YAML, SCHEMA)
    assert set(minimal) == {"run", "model", "dataset", "extraction", "analysis"}
    assert "semantics" not in minimal and "figures" not in minimal and "visualize" not in minimal and "probes" not in minimal["dataset"]
    for key in PENDING_DEFAULTS:  # no default yet: stated as a required key would be
        set_key(minimal, key, flatten(CONFIG_YAML)[key])
    validate_config(minimal, SCHEMA)
    expected = flatten(CONFIG_YAML)
    for key, value in CONFIG_YAML_DIFFERS.items():
        assert expected[key] == value
        expected[key] = schema_default(key)
    assert flatten(minimal) == expected


def test_absent_objects_get_their_keys_defaults():
    """No semantics / visualize / dataset.probes block: each is added with its keys' defaults."""
    config = required_only(CONFIG_YAML, SCHEMA)
    validate_config(config, SCHEMA)
    assert config["semantics"] == {"hierarchy": "wordnet", "concept_share": 0.8, "max_concept_classes": 0.5,
                                   "levels": [4, 6, 8], "spread_draws": 1000, "permutations": 20}
    assert config["dataset"]["probes"] == {"images_per_class": 24, "size": 224, "seed": 0}
    assert config["visualize"]["ica_solver"] == "picard_o" and config["visualize"]["threads"] == 2
    # a block that is there keeps its values and gets the rest
    config = {**required_only(CONFIG_YAML, SCHEMA), "semantics": {"levels": [3]}}
    validate_config(config, SCHEMA)
    assert config["semantics"]["levels"] == [3] and config["semantics"]["concept_share"] == 0.8


def test_defaults_are_copies_not_shared():
    schema = copy.deepcopy(SCHEMA)
    first, second = required_only(CONFIG_YAML, SCHEMA), required_only(CONFIG_YAML, SCHEMA)
    validate_config(first, schema)
    validate_config(second, schema)
    first["semantics"]["levels"].append(99)
    first["compare_runs"].append("x")
    assert second["semantics"]["levels"] == [4, 6, 8] and second["compare_runs"] == []
    assert schema == SCHEMA  # the schema's `default: {}` objects were not filled in place


def test_schema_default_and_with_defaults():
    assert schema_default("semantics.concept_share") == 0.8
    assert schema_default("extraction.shard_top_k") == 100
    assert schema_default("visualize") == {}
    with pytest.raises(KeyError, match="extraction.shards: the schema gives no default"):
        schema_default("extraction.shards")
    with pytest.raises(KeyError, match="extraction.colour: not a key"):
        schema_default("extraction.colour")
    partial = {"run": "t", "extraction": {"image_size": 32}}
    filled = with_defaults(partial)
    assert partial == {"run": "t", "extraction": {"image_size": 32}}  # the argument is not changed
    assert filled["extraction"]["shard_top_k"] == 100 and filled["extraction"]["decode"] == "auto"
    assert filled["semantics"]["hierarchy"] == "wordnet" and "model" not in filled  # required: not invented


def test_each_run_gets_the_defaults_and_errors_name_the_run():
    """runs: each run's config is merged, then validated: defaults per run, text read as YAML."""
    config = required_only(CONFIG_YAML, SCHEMA)
    config["runs"] = [
        {"run": "a", "semantics": {"concept_share": 0.5}},
        {"run": "b", "visualize": {"ica_components": "4"}, "analysis": {"level": "class"}},
    ]
    validate_config(config, SCHEMA)
    runs = run_configs(config, SCHEMA)
    assert runs["a"]["semantics"] == {**config["semantics"], "concept_share": 0.5}
    assert runs["b"]["visualize"] == {**config["visualize"], "ica_components": 4}
    for name, run in runs.items():
        again = copy.deepcopy(run)
        validate_config(again, SCHEMA)
        assert again == run, "validation would add a default the run lacks"
        assert run["run"] == name and run["runs"] == [] and run["runs_build"] == "all"
    runs["a"]["semantics"]["levels"].append(1)
    assert runs["b"]["semantics"]["levels"] == [4, 6, 8] == config["semantics"]["levels"]
    config["runs"].append({"run": "c", "analysis": {"top_k": 0}})
    with pytest.raises(ConfigError, match=r"^runs\[2\] \(c\): analysis.top_k: 0 is less than the minimum of 1$"):
        run_configs(config, SCHEMA)


# ------------------------------------------------------------------------------ library defaults

def _keyword_default(function, name):
    return inspect.signature(function).parameters[name].default


def test_library_defaults_equal_the_schema_defaults():
    """Public functions keep their keyword defaults; they must be the schema's."""
    from neurofacets.cof import read_cof
    from neurofacets.datasets import list_csv
    from neurofacets.extract import MaxArgmaxHooks, iterate_activations
    from neurofacets.ica import FitSettings
    from neurofacets.ica.solvers import DEFAULT_SOLVER, SOLVERS
    from neurofacets.images import DEFAULT_MAX_PIXELS

    fit = FitSettings()
    assert {
        "visualize.ica_components": fit.n_components, "visualize.ica_solver": fit.solver,
        "visualize.ica_max_iter": fit.max_iter, "visualize.ica_tol": fit.tol, "visualize.seed": fit.seed,
        "visualize.ica_restarts": fit.restarts, "visualize.ica_max_side": fit.max_side,
        "extraction.max_image_pixels": DEFAULT_MAX_PIXELS,
        "extraction.precision": _keyword_default(iterate_activations, "precision"),
        "dataset.allow_outside_root": _keyword_default(list_csv, "allow_outside_root"),
        "analysis.level": _keyword_default(read_cof, "level"),
        "model.prefix_tokens": _keyword_default(iterate_activations, "prefix_tokens"),
    } == {key: schema_default(key) for key in (
        "visualize.ica_components", "visualize.ica_solver", "visualize.ica_max_iter", "visualize.ica_tol",
        "visualize.seed", "visualize.ica_restarts", "visualize.ica_max_side", "extraction.max_image_pixels",
        "extraction.precision", "dataset.allow_outside_root", "analysis.level", "model.prefix_tokens")}
    assert _keyword_default(MaxArgmaxHooks, "prefix_tokens") == schema_default("model.prefix_tokens")
    assert DEFAULT_SOLVER == schema_default("visualize.ica_solver")
    assert list(SOLVERS) == SCHEMA["properties"]["visualize"]["properties"]["ica_solver"]["enum"]


def test_figure_library_defaults_equal_the_schema_defaults():
    from neurofacets.figures import write_tables
    from neurofacets.figures.facets import plot_facet_examples
    from neurofacets.gallery import build_layer_gallery
    from neurofacets.neuron_figure import draw_neuron, neuron_figure

    assert _keyword_default(draw_neuron, "dpi") == schema_default("figures.dpi")
    assert _keyword_default(neuron_figure, "dpi") == schema_default("figures.dpi")
    assert _keyword_default(write_tables, "per_layer") == schema_default("figures.examples_per_layer")
    assert _keyword_default(plot_facet_examples, "examples_per_layer") == schema_default("figures.examples_per_layer")
    assert _keyword_default(build_layer_gallery, "n_patches") == schema_default("figures.gallery_patches")


# ------------------------------------------------------------------------------ no second default in code

#: ``.get`` / ``.setdefault`` / ``.pop`` on a config value, or ``key in <config value>``.
CONFIG_LOOKUPS = ("get", "setdefault", "pop")
KEY_NAMES = {key.rsplit(".", 1)[-1] for key, _, _ in schema_keys(SCHEMA)}
OPTIONAL_NAMES = {key.rsplit(".", 1)[-1] for key, _, required in schema_keys(SCHEMA) if not required}
#: Lines that still read the config with .get: (file, source) (none; the test fails as soon as
#: a listed one is gone).
PENDING_LOOKUPS: set[tuple[str, str]] = set()


def _is_root(node: ast.AST) -> bool:
    """``config``, ``snakemake.config``, ``snakemake.params``: the run's configuration."""
    if isinstance(node, ast.Name):
        return node.id == "config"
    return (isinstance(node, ast.Attribute) and node.attr in ("config", "params")
            and isinstance(node.value, ast.Name) and node.value.id == "snakemake")


def _from_config(node: ast.AST, names: set[str]) -> bool:
    """Whether an expression's value is (part of, or computed from) the configuration."""
    if _is_root(node) or (isinstance(node, ast.Name) and node.id in names):
        return True
    if isinstance(node, (ast.Subscript, ast.Attribute, ast.Starred)):
        return _from_config(node.value, names)
    if isinstance(node, ast.Call):
        args = [*node.args, *(k.value for k in node.keywords)]
        if isinstance(node.func, ast.Attribute):
            args.append(node.func.value)  # a method's result: config.items(), config["a"].get(...)
        return any(_from_config(a, names) for a in args)
    if isinstance(node, (ast.BoolOp, ast.Tuple, ast.List)):
        return any(_from_config(v, names) for v in getattr(node, "values", None) or node.elts)
    if isinstance(node, ast.IfExp):
        return _from_config(node.body, names) or _from_config(node.orelse, names)
    if isinstance(node, ast.Dict):
        return any(_from_config(v, names) for v in node.values if v is not None)
    return False


def _bound_names(target: ast.AST) -> list[str]:
    """The names an assignment target binds (``a``, ``a, b``; not ``a[k]`` or ``a.b``)."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _bound_names(element)]
    if isinstance(target, ast.Starred):
        return _bound_names(target.value)
    return []


#: What opens a scope of names (comprehensions are read as part of theirs).
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a scope, nested functions' bodies left out (the nested function itself is in)."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, SCOPES):
            stack.extend(ast.iter_child_nodes(node))


def _config_names(nodes: list[ast.AST], outer: frozenset[str]) -> frozenset[str]:
    """The names a scope binds to a configuration value (to a fixed point), and the outer ones it sees."""
    names = set(outer)
    while True:
        before = len(names)
        for node in nodes:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                        pairs = zip(target.elts, node.value.elts)
                    else:
                        pairs = [(target, node.value)]
                    for t, v in pairs:
                        if _from_config(v, names):
                            names.update(_bound_names(t))
            elif isinstance(node, (ast.For, ast.comprehension)) and _from_config(node.iter, names):
                names.update(_bound_names(node.target))
            elif isinstance(node, ast.NamedExpr) and _from_config(node.value, names):
                names.add(node.target.id)
        if len(names) == before:
            return frozenset(names)


def config_lookups(tree: ast.AST, strict: bool, outer: frozenset[str] = frozenset()) -> list[tuple[int, str]]:
    """(line, source) of each lookup of a configuration key that could fall back to a default.

    A configuration value is ``config`` (or ``snakemake.config`` / ``snakemake.params``), a
    part of one, or what a name is bound to from one, scope by scope. ``strict`` (rules):
    every ``.get``/``.setdefault``/``.pop`` on a configuration value and every ``in`` test of
    one. Otherwise (package code, scripts, where a section may come in partial): those naming
    a key the schema gives a default, or naming it by a variable, i.e. a second default.
    ``outer``: global names bound to configuration values elsewhere (Snakefiles that include
    each other share one namespace).
    """
    found: list[tuple[int, str]] = []

    def visit(scope: ast.AST, outer: frozenset[str]) -> None:
        nodes = list(_own_nodes(scope))
        names = _config_names(nodes, outer)
        for node in nodes:
            if isinstance(node, SCOPES):
                visit(node, names)
                continue
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in CONFIG_LOOKUPS and _from_config(node.func.value, names)):
                key = node.args[0] if node.args else None
                named = isinstance(key, ast.Constant) and isinstance(key.value, str)
                if strict or not named or key.value in OPTIONAL_NAMES:
                    found.append((node.lineno, ast.unparse(node)))
            elif isinstance(node, ast.Compare) and _is_key_test(node, names, strict):
                found.append((node.lineno, ast.unparse(node)))

    visit(tree, outer)
    return sorted(found)


def global_config_names(trees: list[ast.Module]) -> frozenset[str]:
    """Names bound to configuration values at the top level of any of ``trees``."""
    return _config_names([node for tree in trees for node in _own_nodes(tree)], frozenset())


def _is_key_test(node: ast.Compare, names: frozenset[str], strict: bool) -> bool:
    """``"key" in <config value>`` for a key of the schema, or ``<anything> in config``.

    (``fmt in FIGURE_FORMATS``, membership in a configured list, is no key lookup.)
    """
    keys = KEY_NAMES if strict else OPTIONAL_NAMES
    for op, right in zip(node.ops, node.comparators):
        if not isinstance(op, (ast.In, ast.NotIn)) or not _from_config(right, names):
            continue
        left = node.left
        if _is_root(right) or (isinstance(left, ast.Constant) and left.value in keys):
            return True
    return False


def parse_snakefile(path: Path) -> tuple[ast.Module, dict[int, int]]:
    """A Snakefile as the Python Snakemake compiles it to, and its line map (Python -> .smk)."""
    from snakemake import parser
    from snakemake.sourcecache import LocalSourceFile

    def open_source(source):
        return open(source.get_path_or_uri(secret_free=True), encoding="utf-8")

    workflow = types.SimpleNamespace(sourcecache=types.SimpleNamespace(open=open_source))
    linemap: dict[int, int] = {}
    code, _ = parser.parse(LocalSourceFile(str(path)), workflow, linemap)
    return ast.parse(code), linemap


@pytest.mark.parametrize("code, flagged", [
    ('config.get("a", 1)', ["config.get('a', 1)"]),
    ('x = config["a"]\nx.get("b", 2)', ["x.get('b', 2)"]),
    ('config["a"].get("b")', ["config['a'].get('b')"]),
    ('y = "seed" in config["analysis"]', ["'seed' in config['analysis']"]),
    ('z = [k for k in ("a", "b") if k not in config]', ["k not in config"]),
    ('ds, ex = config["d"], config["e"]\nex.setdefault("k", 0)', ["ex.setdefault('k', 0)"]),
    ('for name, c in run_configs(config).items():\n    c.get("k", 1)', ["c.get('k', 1)"]),
    ('def f(wc):\n    return snakemake.params.settings.get("k", 1)', ["snakemake.params.settings.get('k', 1)"]),
    ('s = [c for c in config["runs"] if c.get("run")]', ["c.get('run')"]),
    # not the configuration: a checkpoint, Snakemake's input, a dict of its own
    ('checkpoints.semantics_hierarchy.get().output[0]', []),
    ('snakemake.input.get("probes")', []),
    ('d = {"a": 1}\nd.get("a", 0)\n{"b": 2}.get("b", 3)', []),
    ('x = config["a"]["b"]\ny = config["c"] if config["d"] else 0', []),
    ('f = config["figures"]["format"]\nz = [p for p in paths if p.suffix in f]', []),  # a list's members
    ('out = {}\nout["a"] = config["a"]\n"a" in out', []),
])
def test_the_lookup_finder(code, flagged):
    assert [source for _, source in config_lookups(ast.parse(code), strict=True)] == flagged


def test_the_lookup_finder_reads_rules_as_snakemake_compiles_them(tmp_path):
    smk = tmp_path / "x.smk"
    smk.write_text('X = config["a"]\n\n\nrule r:\n    output:\n        "o",\n    params:\n'
                   '        k=X.get("k", 1),\n        c=lambda wc: checkpoints.c.get().output[0],\n'
                   '    shell:\n        "true"\n')
    tree, linemap = parse_snakefile(smk)
    assert [(linemap[line], source) for line, source in config_lookups(tree, strict=True)] == \
        [(8, "X.get('k', 1)")]


def test_rules_index_the_validated_config():
    """No rule (nor the Snakefile) reads a config key with .get or `in`: validation filled it."""
    trees = {str(path.relative_to(REPO)): parse_snakefile(path)[0]
             for path in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]}
    shared = global_config_names(list(trees.values()))  # include: one namespace
    assert {"SEMANTICS", "ENCODE_ANALYSIS", "RUNS", "RUN_CONFIG"} <= shared
    found = {(name, source) for name, tree in trees.items()
             for _, source in config_lookups(tree, strict=True, outer=shared)}
    assert found - PENDING_LOOKUPS == set(), "index the config directly (src/neurofacets/config_schema.yaml has the default)"
    assert PENDING_LOOKUPS - found == set(), "gone: remove them from PENDING_LOOKUPS"


def test_package_and_scripts_write_no_second_default():
    """Package code and workflow scripts read no optional key with .get: the validated config
    (or neurofacets.config.with_defaults / schema_default) has its default."""
    found = []
    for path in [*sorted((REPO / "src" / "neurofacets").rglob("*.py")),
                 *sorted((REPO / "workflow" / "scripts").glob("*.py"))]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [f"{path.relative_to(REPO)}:{line}: {source}" for line, source in config_lookups(tree, strict=False)]
    assert found == []


# ------------------------------------------------------------------------------ through Snakemake

def _planned_jobs(stdout: str) -> list[str]:
    """Every job of a dry run: its rule and indented fields (inputs, outputs, wildcards,
    threads, resources...); the jobid, the reason (its file lists come in any order) and the
    time stamps left out. Jobs inside a group job's block (indented once more) count alike."""
    jobs: list[list[str]] = []
    indent = None  # of the open job's `rule x:` line; None once its block has ended
    for line in stdout.splitlines():
        start = re.fullmatch(r"( *)((?:local)?(?:rule|checkpoint) \w+:)", line)
        if start:
            indent = len(start.group(1))
            jobs.append([start.group(2)])
        elif indent is not None and line.startswith(" " * (indent + 4)):
            if not line.strip().startswith(("jobid:", "reason:")):
                jobs[-1].append(line[indent:])
        else:
            indent = None  # the block has ended; later indented lines are not the job's
    return sorted("\n".join(job) for job in jobs)


@pytest.mark.e2e
def test_required_keys_alone_plan_the_default_run(tmp_path):
    """Without config/config.yaml (another working directory), a config of the required keys
    plans exactly the jobs of the default run: the schema's defaults are config.yaml's."""
    minimal = required_only(CONFIG_YAML, SCHEMA)
    for key in PENDING_DEFAULTS | set(CONFIG_YAML_DIFFERS):
        set_key(minimal, key, flatten(CONFIG_YAML)[key])
    (tmp_path / "minimal.yaml").write_text(yaml.safe_dump(minimal))

    def dry_run(*args):
        result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "2", *args],
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    default = dry_run("-d", str(tmp_path / "default"), "-s", str(REPO / "Snakefile"),
                      "--configfile", str(REPO / "config" / "config.yaml"))
    alone = dry_run("-d", str(tmp_path / "alone"), "-s", str(REPO / "Snakefile"),
                    "--configfile", str(tmp_path / "minimal.yaml"))
    jobs = _planned_jobs(default)
    assert len(jobs) > 50 and any(job.startswith("rule extract:") for job in jobs)
    assert _planned_jobs(alone) == jobs
