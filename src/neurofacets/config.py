"""The run configuration: schema validation with plain messages, defaults, and cross-key checks.

The Snakefile calls [`validate_config`][] (the schema, `SCHEMA_PATH`: types, allowed values,
unknown keys, defaults) and then [`check_config`][] for the rules that tie several keys
together. Both stop the run at parse time with a message that starts with the dotted key,
e.g. ``extraction.shards: 'four' is not of type integer``.

Every default of the configuration is written once, as a ``default:`` in the schema: after
[`validate_config`][] every optional key is present, so the rules index the config
directly. Code outside a run reads a default with [`schema_default`][], or fills a partial
configuration with [`with_defaults`][].

Snakemake 9 hands the values inside a nested ``--config key={...}`` over as text
(``--config 'extraction={"shards": 4}'`` gives ``{"shards": "4"}``), so
[`validate_config`][] first reads such text as YAML where the schema wants a number, a
boolean or null.
"""

from __future__ import annotations

import copy
import math
import platform
from collections.abc import Mapping, MutableMapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .layer_table import configured_layer_names, image_size_problem, in_layer_table
from .preprocessing import recipe_from_config, resolve_preprocessing
from .pathlike import PathLike


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key."""


#: How YAML spells null; text like this means null where the schema allows it.
_NULL_SPELLINGS = frozenset({"null", "Null", "NULL", "~"})

#: The configuration schema: package data, so an installed wheel finds it as an editable
#: checkout does.
SCHEMA_PATH = Path(__file__).resolve().with_name("config_schema.yaml")
#: A job that reads a default from the schema ([`schema_default`][]) reruns when it changes.
PACKAGE_DATA = ("config_schema.yaml",)


def load_schema(path: PathLike = SCHEMA_PATH) -> dict[str, Any]:
    """Read a JSON schema written as YAML (by default the workflow's, `SCHEMA_PATH`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"the configuration schema {path} does not exist")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _workflow_schema() -> dict[str, Any]:
    return load_schema(SCHEMA_PATH)


def image_size_bounds(schema: Mapping[str, Any] | None = None) -> tuple[int, int]:
    """The smallest and largest ``extraction.image_size`` the schema takes (its integer form; ``auto``
    is the other)."""
    node = (_workflow_schema() if schema is None else schema)["properties"]["extraction"]["properties"]["image_size"]
    integer = next(form for form in node["oneOf"] if form.get("type") == "integer")
    return integer["minimum"], integer["maximum"]


def schema_default(key: str, schema: Mapping[str, Any] | None = None) -> Any:
    """The schema's default of a dotted ``key``, e.g. ``schema_default("semantics.concept_share")``.

    For code outside a run (benchmarks, library defaults checked against the schema); a run
    reads its validated configuration, which holds every default already.

    Raises
    ------
    KeyError
        The schema has no such key, or the key has no default (it is required).
    """
    node: Any = _workflow_schema() if schema is None else schema
    for part in key.split("."):
        node = node.get("properties", {}).get(part) if isinstance(node, Mapping) else None
        if node is None:
            raise KeyError(f"{key}: not a key of the configuration schema")
    if "default" not in node:
        raise KeyError(f"{key}: the schema gives no default (the key is required)")
    return copy.deepcopy(node["default"])


def with_defaults(config: Mapping[str, Any], schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A copy of ``config`` with every absent optional key set to its schema default.

    What [`validate_config`][] adds, for library functions that take a run configuration
    and may be called outside a run with a partial one (tests, benchmarks). Nothing is
    validated and no required key is added.
    """
    out = copy.deepcopy(dict(config))
    _fill_defaults(out, _workflow_schema() if schema is None else schema)
    return out


def validate_config(config: MutableMapping[str, Any], schema: Mapping[str, Any] | PathLike = SCHEMA_PATH) -> None:
    """Check ``config`` against the JSON ``schema`` in place; raise [`ConfigError`][] if it fails.

    Three steps:

    1. Text that the schema does not accept but whose YAML reading does is replaced by that
       reading (``"4"`` -> 4 where an integer is wanted, ``"true"`` -> True, ``"null"`` ->
       None wherever null is allowed): Snakemake passes nested ``--config`` values as text.
    2. Every remaining violation is reported, one line each, dotted key first, in plain words;
       a value that fits none of several forms (``oneOf``, ``pattern``) lists the accepted ones.
       A number that is NaN or infinite (YAML ``.nan``, ``.inf``) is refused wherever it is:
       JSON Schema's ``number`` takes them and NaN passes every bound.
    3. Keys the config leaves out get the schema's ``default`` (as Snakemake's ``validate`` did),
       at every depth: an absent object with a ``default`` (e.g. ``semantics: {}``) is added
       and then gets its own keys' defaults.

    Parameters
    ----------
    config
        The merged configuration (``config`` in the Snakefile); changed in place.
    schema
        The schema, or its path (default: `SCHEMA_PATH`).
    """
    if not isinstance(schema, Mapping):
        schema = load_schema(schema)
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema)
    _read_text_as_yaml(config, schema, validator)
    _integral_floats_as_integers(config, schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    lines = [explain_schema_error(e) for e in errors]
    # JSON Schema's "number" takes NaN and the infinities (Python's floats), and NaN passes
    # every bound (each comparison with it is false): refused here, whatever the schema says.
    reported = {dotted_key(e.absolute_path) for e in errors}
    lines += [f"{dotted_key(path)}: {value!r} is not a finite number (NaN and infinities are refused)"
              for path, value in _non_finite_numbers(config, [])
              if dotted_key(path) not in reported and _subschema(schema, path) is not None]
    if lines:
        raise ConfigError("\n".join(lines))
    _fill_defaults(config, schema)


def dotted_key(path: Any) -> str:
    """``["extraction", "shards"]`` -> ``extraction.shards``; list positions as ``[i]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "config"


def explain_schema_error(error: jsonschema.ValidationError) -> str:
    """One line, dotted key first, saying in plain words what is wrong and what is accepted."""
    key = dotted_key(error.absolute_path)
    value, schema, kind = error.instance, error.schema, error.validator
    if kind == "type":
        types = error.validator_value
        types = [types] if isinstance(types, str) else list(types)
        return f"{key}: {value!r} is not of type {' or '.join(types)}"
    if kind == "enum":
        return f"{key}: {value!r} is not one of {', '.join(map(str, error.validator_value))}"
    if kind == "oneOf" or kind == "anyOf":
        forms = "; ".join(_describe(branch) for branch in error.validator_value)
        return f"{key}: {value!r} is not an accepted form; use one of: {forms}"
    if kind == "pattern":
        return f"{key}: {value!r} is not an accepted form; use {schema.get('description', error.validator_value)}"
    if kind == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        extra = sorted(k for k in value if k not in schema.get("properties", {}))
        return "\n".join(
            f"{dotted_key([*error.absolute_path, k])}: unknown key; {key} accepts {', '.join(known)}"
            for k in extra
        )
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"{dotted_key([*error.absolute_path, missing])}: required key is missing"
    return f"{key}: {error.message}"


def _describe(branch: Mapping[str, Any]) -> str:
    """A ``oneOf`` branch in words: its description, else its values or type."""
    if "description" in branch:
        return str(branch["description"])
    if "enum" in branch:
        return " or ".join(repr(v) for v in branch["enum"])
    kind = branch.get("type", "value")
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


def _subschema(schema: Mapping[str, Any], path: list[Any]) -> Mapping[str, Any] | None:
    """The schema of the value at ``path`` (through ``properties`` and ``items``)."""
    for part in path:
        if isinstance(part, int):
            schema = schema.get("items")
        else:
            schema = schema.get("properties", {}).get(part)
        if not isinstance(schema, Mapping):
            return None
    return schema


def _allows_null(schema: Mapping[str, Any]) -> bool:
    kinds = schema.get("type")
    if kinds == "null" or (isinstance(kinds, list) and "null" in kinds):
        return True
    return any(_allows_null(b) for b in schema.get("oneOf", []) + schema.get("anyOf", []))


def _text_values(node: Any, path: list[Any]) -> list[tuple[list[Any], str]]:
    """Every string in a nested dict/list with its path."""
    if isinstance(node, str):
        return [(path, node)]
    items = node.items() if isinstance(node, Mapping) else enumerate(node) if isinstance(node, list) else []
    return [found for key, child in items for found in _text_values(child, [*path, key])]


def _read_text_as_yaml(config: MutableMapping[str, Any], schema: Mapping[str, Any],
                       validator: jsonschema.protocols.Validator) -> None:
    """Replace text the schema rejects by its YAML reading where that is a number, bool or null."""
    for path, text in _text_values(config, []):
        sub = _subschema(schema, path)
        if sub is None:
            continue  # an unknown key: reported by validation
        if text.strip() in _NULL_SPELLINGS and _allows_null(sub):
            _set(config, path, None)
            continue
        if not any(True for _ in validator.evolve(schema=sub).iter_errors(text)):
            continue
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        if isinstance(value, (bool, int, float)):
            _set(config, path, value)


def _wants_integer(schema: Mapping[str, Any]) -> bool:
    """Whether ``schema`` takes integers but no other numbers (directly or in a oneOf/anyOf branch)."""
    def types(node: Mapping[str, Any]) -> set[str]:
        kinds = node.get("type", [])
        found = {kinds} if isinstance(kinds, str) else set(kinds)
        for branch in node.get("oneOf", []) + node.get("anyOf", []):
            found |= types(branch)
        return found

    found = types(schema)
    return "integer" in found and "number" not in found


def _integral_floats_as_integers(config: MutableMapping[str, Any], schema: Mapping[str, Any]) -> None:
    """One rule for every integer key: a float with no fractional part (``top_k: 5.0``) is taken
    as that integer, so every job sees an ``int``; JSON Schema's ``integer`` accepts 5.0 as
    it is. A float with a fraction stays, and validation refuses it naming the key."""
    for path, value in _float_values(config, []):
        sub = _subschema(schema, path)
        if sub is not None and math.isfinite(value) and value.is_integer() and _wants_integer(sub):
            _set(config, path, int(value))


def _float_values(node: Any, path: list[Any]) -> list[tuple[list[Any], float]]:
    """Every float in a nested dict/list, with its path."""
    if isinstance(node, float):
        return [(path, node)]
    items = node.items() if isinstance(node, Mapping) else enumerate(node) if isinstance(node, list) else []
    return [found for key, child in items for found in _float_values(child, [*path, key])]


def _non_finite_numbers(node: Any, path: list[Any]) -> list[tuple[list[Any], float]]:
    """Every NaN or infinite float in a nested dict/list, with its path."""
    if isinstance(node, float):
        return [] if math.isfinite(node) else [(path, node)]
    items = node.items() if isinstance(node, Mapping) else enumerate(node) if isinstance(node, list) else []
    return [found for key, child in items for found in _non_finite_numbers(child, [*path, key])]


def _set(config: MutableMapping[str, Any], path: list[Any], value: Any) -> None:
    node: Any = config
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _fill_defaults(node: Any, schema: Mapping[str, Any]) -> None:
    """Give every absent key of a present object its schema ``default``, depth first.

    An object added from its default (``{}``) is filled in turn. Defaults are copied: a
    config must not share a mutable value with the schema or with another config.
    """
    if not isinstance(node, MutableMapping):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if key in node:
            _fill_defaults(node[key], sub)


def labels_path(labels: PathLike, root: PathLike | None) -> Path:
    """A relative ``dataset.labels`` path that does not exist as given is looked up in ``root``."""
    labels = Path(labels)
    if not labels.is_absolute() and not labels.exists() and root is not None:
        return Path(root) / labels
    return labels


def device_problem(device: str) -> str | None:
    """Why ``extraction.device`` cannot work with this PyTorch, or None.

    Only what holds wherever the jobs run: ``mps`` needs PyTorch's Metal backend, which
    exists only in builds for macOS (on macOS, torch is asked whether it was built with
    it; elsewhere no torch is imported). CUDA is not checked: the workflow is often parsed
    on a machine without a GPU (a cluster's login node) whose jobs run on GPU nodes;
    extraction refuses an absent GPU itself. The schema already refuses a malformed
    device (``extraction.device``'s pattern).
    """
    if device != "mps":
        return None
    system = platform.system()
    if system != "Darwin":
        return (f"extraction.device: 'mps' (Apple's Metal) exists only in PyTorch for macOS; this is {system}: "
                "use auto, cpu, cuda or cuda:<n>")
    import torch  # macOS only: the one case where the answer is in the torch build

    if not torch.backends.mps.is_built():
        return (f"extraction.device: 'mps' but this PyTorch {torch.__version__} was built without MPS support: "
                "use auto or cpu, or install a PyTorch built with MPS")
    return None


#: The default run's name (``run`` in config/config.yaml): the synthetic probes only.
DEMO_RUN = "demo"


def demo_run_problem(config: Mapping[str, Any]) -> str | None:
    """Why a configuration must not run under the default run's name, or None.

    ``--configfile my.yaml`` is merged over config/config.yaml, so a config of one's own that
    names no ``run`` inherits `DEMO_RUN`: its images would be analysed into
    ``results/demo`` beside (and instead of) the default run's. Any dataset but the probes
    under that name is refused.
    """
    dataset = config["dataset"]
    if config["run"] != DEMO_RUN or dataset["format"] == "probes":
        return None
    where = f" (root {dataset['root']})" if dataset["root"] else ""
    return (f"run: {DEMO_RUN!r} is the default run's name (the synthetic probes of config/config.yaml), but "
            f"this run's dataset is format {dataset['format']!r}{where}. A file given with --configfile is "
            f"merged over config/config.yaml, so a config without its own run inherits {DEMO_RUN!r}: add "
            f"`run: <a name of your own>` to your config (outputs go to results/<name>/)")


def check_config(config: MutableMapping[str, Any]) -> None:
    """Check relations between keys of a validated configuration; raise [`ConfigError`][] if one fails.

    First the preprocessing keys left ``auto`` get the model's recipe, in place
    (`neurofacets.preprocessing.resolve_preprocessing`): every rule then reads numbers.

    Besides the dataset's and the weights' files: a dataset other than the probes is refused
    under the default run's name ([`demo_run_problem`][]); the device must exist in this PyTorch
    build ([`device_problem`][]), the layers must be layers of the architecture, and the
    input size must give every chosen layer a map
    (`neurofacets.layer_table.image_size_problem`, from the stored layer table: no
    torch is imported for a torchvision architecture the table holds).
    """
    problem = demo_run_problem(config)
    if problem:
        raise ConfigError(problem)
    dataset = config["dataset"]
    fmt = dataset["format"]
    if fmt in ("folder", "csv") and not dataset["root"]:
        raise ConfigError(f"dataset.root: required when dataset.format is {fmt!r}")
    if fmt == "csv" and not dataset["labels"]:
        raise ConfigError("dataset.labels: required when dataset.format is 'csv' (a CSV path,label[,class_name])")
    if fmt == "probes" and dataset["images_per_class"] is not None:
        raise ConfigError(
            f"dataset.images_per_class: {dataset['images_per_class']} caps a folder or csv dataset; the probe "
            "images generated per class are dataset.probes.images_per_class (leave dataset.images_per_class null)")
    for key in ("root", "labels", "coarse_labels"):
        value = dataset[key]
        if value and key == "labels":
            value = str(labels_path(value, dataset["root"]))
        if value and not Path(value).exists():
            hint = (f"; give the folder that holds your images in your config file or on the command line, "
                    f"e.g. --config 'dataset={{\"root\": \"/data/images\"}}'" if key == "root" else "")
            raise ConfigError(f"dataset.{key}: {value!r} does not exist{hint}")
    if config["analysis"]["level"] == "coarse" and not dataset["coarse_labels"]:
        raise ConfigError("analysis.level: 'coarse' needs dataset.coarse_labels (a CSV class_name,coarse)")
    ex = config["extraction"]
    try:
        recipe = resolve_preprocessing(config)
    except (ValueError, TypeError, RuntimeError) as error:
        message = str(error)
        raise ConfigError(message if message.startswith(("model.", "extraction.")) else f"model.arch: {message}") \
            from None
    sides = recipe.resize if isinstance(recipe.resize, tuple) else (recipe.resize,)
    if min(sides) < recipe.image_size:
        raise ConfigError(
            f"extraction.resize: {ex['resize']} is smaller than extraction.image_size {ex['image_size']}"
        )
    problem = device_problem(ex["device"])
    if problem:
        raise ConfigError(problem)
    model = config["model"]
    try:
        layers = configured_layer_names(model["arch"], model["layers"])
    except (ValueError, TypeError, RuntimeError) as error:
        message = str(error)
        raise ConfigError(message if message.startswith("model.") else f"model.arch: {message}") from None
    if not in_layer_table(model["arch"]):
        # the stored table's networks were checked when it was made (layer_table.build_table)
        from .models.checks import planning_problem

        problem = planning_problem(model["arch"], tuple(layers), ex["image_size"])
        if problem:
            raise ConfigError(problem)
    problem = image_size_problem(model["arch"], layers, ex["image_size"])
    if problem:
        raise ConfigError(problem)
    weights = config["model"]["weights"]
    if weights.endswith((".pth", ".pt", ".safetensors")) and not Path(weights).exists():
        raise ConfigError(f"model.weights: the file {weights!r} does not exist")
    hierarchy = config["semantics"]["hierarchy"]
    if hierarchy not in ("wordnet", "none") and not Path(hierarchy).is_file():
        raise ConfigError(f"semantics.hierarchy: {hierarchy!r} is neither wordnet, none nor an existing CSV file")


RUNS_KEYS = ("runs", "runs_build")


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in, nested mappings key by key (override wins)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def run_configs(config: Mapping[str, Any], schema: Mapping[str, Any] | PathLike | None = None, *,
                check: bool = False) -> dict[str, dict[str, Any]]:
    """The configuration of each run listed in ``runs`` (several runs in one call).

    Each entry of ``runs`` holds a run name and what differs from the rest of the
    configuration (e.g. ``model``); it is merged into that rest, section by section. Every
    run's ``compare_runs`` is emptied: the call compares the runs itself.

    Parameters
    ----------
    config
        The validated top-level configuration.
    schema
        When given (the schema or its path), each run's merged configuration is validated
        with [`validate_config`][], which also gives it the defaults of what neither the
        entry nor the rest of the configuration sets; an error names the run first.
    check
        With ``schema``: also [`check_config`][] each run, its errors named the same way
        (``runs[i] (name): ...``), before the run's module repeats the checks.

    Returns
    -------
    dict
        ``{run name: its complete configuration}`` in the order of ``runs``; no value is
        shared with ``config`` or with another run.
    """
    if schema is not None and not isinstance(schema, Mapping):
        schema = load_schema(schema)
    problem = demo_run_problem(config)  # the top-level run names the comparison's folder
    if problem:
        raise ConfigError(problem)
    runs = config["runs"]
    base = {key: value for key, value in config.items() if key not in RUNS_KEYS}
    out: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(runs):
        if not isinstance(entry, Mapping) or not entry.get("run"):
            raise ConfigError(f"runs[{i}]: each run needs a name (run: <name>) and what differs, e.g. model")
        nested = [key for key in entry if key in RUNS_KEYS]
        if nested:
            raise ConfigError(f"runs[{i}] ({entry['run']}): {nested} belong at the top level, not in a run")
        name = str(entry["run"])
        if name in out:
            raise ConfigError(f"runs[{i}]: the run name {name!r} is listed twice")
        if name == config["run"]:
            raise ConfigError(
                f"runs[{i}]: {name!r} is also the top-level run, whose folder holds the comparison; rename one"
            )
        # `control` pairs the run with another (neurofacets.controls); it is no key of a run's config
        settings = {key: value for key, value in entry.items() if key != "control"}
        run_config = copy.deepcopy({**_merged(base, settings), "compare_runs": []})
        if schema is not None:
            try:
                validate_config(run_config, schema)
                if check:
                    check_config(run_config)
            except ConfigError as error:
                raise ConfigError("\n".join(f"runs[{i}] ({name}): {line}" for line in str(error).splitlines())) from None
        out[name] = run_config
    return out


#: What ``extraction.decode: auto`` means: the reference path.
REFERENCE_DECODE = "pil"


def preprocessing_label(extraction: dict) -> str:
    """What decides the pixels and arithmetic a run's network saw, in one line (``summary.csv``).

    E.g. ``decode pil (reference), resize 256, crop 224 (round), bilinear, mean
    0.485,0.456,0.406, std 0.229,0.224,0.225, fp32``: runs whose labels differ may rank
    different images at the k-th place of a neuron, so they compare in their statistics, not
    neuron by neuron. ``extraction`` is the resolved config section ([`check_config`][]).
    """
    decode = REFERENCE_DECODE if extraction["decode"] == "auto" else extraction["decode"]
    kind = "reference" if decode == REFERENCE_DECODE else "not the reference"
    return f"decode {decode} ({kind}), {recipe_from_config(extraction).label()}, {extraction['precision']}"
