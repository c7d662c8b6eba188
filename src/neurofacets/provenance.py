"""Provenance attributes carried by every store and table the pipeline writes."""

from __future__ import annotations

import ast
import copy
import functools
import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__


def config_digest(config: Mapping[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of a configuration, independent of key order."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (64 hex digits), read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_digest(path: str | Path) -> str:
    """SHA-256 (first 16 hex digits) of a file's bytes, e.g. the dataset's images.csv."""
    return file_sha256(path)[:16]


PACKAGE = "neurofacets"
PACKAGE_ROOT = Path(__file__).parent


def _module_file(module: str) -> Path | None:
    """The source file of package module ``module`` (dotted, from ``neurofacets``), if any."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_ROOT.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported_modules(path: Path, module: str | None) -> frozenset[str]:
    """Package modules named by the import statements of one file (any depth, lazy ones too).

    ``module`` is the file's own dotted name (None for a script outside the package); it
    resolves relative imports. ``from a import b`` names ``a`` and, where it is a module, ``a.b``.
    """
    # every rule's digest walks the same modules while Snakemake parses the workflow (in each
    # call and each cluster job): each file is resolved once per version of it
    stat = path.stat()
    return _resolved_imports(str(path), module, stat.st_mtime_ns, stat.st_size, str(PACKAGE_ROOT))


@functools.lru_cache(maxsize=1024)
def _resolved_imports(path: str, module: str | None, mtime_ns: int, size: int, root: str) -> frozenset[str]:
    """`_imported_modules` of one version of a file under one package root."""
    path = Path(path)
    names = _imported_names(path.read_bytes(), module, path.name == "__init__.py")
    found: set[str] = set()
    for name in names:
        parts = name.split(".")
        # importing a.b.c runs a/__init__ and a/b/__init__ too
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if _module_file(prefix) is not None:
                found.add(prefix)
    return frozenset(found)


@functools.lru_cache(maxsize=512)
def _imported_names(source: bytes, module: str | None, is_package: bool) -> frozenset[str]:
    """Dotted names the import statements of ``source`` refer to (cached by content)."""
    tree = ast.parse(source)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if module is None:
                    continue
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(names)


def package_dependencies(script: str | Path) -> list[str]:
    """Every package module that ``script`` imports, directly or through other modules.

    Read from the import statements (``ast``), so nothing is executed; imports inside
    functions count too. Returns sorted dotted names (``neurofacets.extract``, ...).
    """
    pending = sorted(_imported_modules(Path(script), None))
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        pending.extend(sorted(_imported_modules(path, name) - seen))
    return sorted(seen)


def package_data_files(module: str) -> list[Path]:
    """The package data files a module reads, as its ``PACKAGE_DATA`` declares them.

    A module that reads files shipped with the package (CSS, templates, tables) names them
    in a module-level ``PACKAGE_DATA`` tuple of glob patterns relative to its own folder;
    it is read from the source (``ast``), not by importing the module.
    """
    path = _module_file(module)
    if path is None:
        return []
    patterns = _declared_package_data(path.read_bytes())
    files = {found for pattern in patterns for found in path.parent.glob(pattern) if found.is_file()}
    return sorted(files)


@functools.lru_cache(maxsize=512)
def _declared_package_data(source: bytes) -> tuple[str, ...]:
    """The module-level ``PACKAGE_DATA`` tuple of a module's source (cached by content)."""
    patterns: tuple[str, ...] = ()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "PACKAGE_DATA" for t in targets):
                patterns = tuple(ast.literal_eval(node.value))
    return patterns


def script_code_digest(script: str | Path) -> str:
    """Digest of the package code a workflow script runs (its transitive package imports).

    Snakemake reruns a ``script:`` rule when its script changes, not when the package it
    calls changes; rules put this digest into their ``params:`` so that a change of any
    module their script depends on (and of no other) triggers a rerun. The version and the
    package data those modules declare (`package_data_files`) are included.
    """
    h = hashlib.sha256(__version__.encode())
    for name in package_dependencies(script):
        h.update(name.encode())
        h.update(_module_file(name).read_bytes())
        for data in package_data_files(name):
            h.update(data.relative_to(PACKAGE_ROOT).as_posix().encode())
            h.update(data.read_bytes())
    return h.hexdigest()[:16]


#: Settings that change how fast a job runs, never a byte it writes: ``(section, key)``. They
#: are no params of any rule and no part of the ``config_digest``
#: (`without_performance_settings`), so changing one reruns nothing.
#: ``extraction.batch_size`` is not one of them: on a CPU, VGG16's maps of the same images in
#: batches of 1 and of 12 differ in the last bit (another kernel per batch shape), so a new
#: batch size reruns the shards.
PERFORMANCE_SETTINGS: tuple[tuple[str, str], ...] = (("extraction", "workers"), ("visualize", "threads"))


def without_performance_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` without the `PERFORMANCE_SETTINGS` (an absent one is no error).

    What the rules' params and the stores' ``config_digest`` are computed from, so that a
    performance setting neither reruns a job nor changes a stored attribute.
    """
    out = copy.deepcopy(dict(config))
    for section, key in PERFORMANCE_SETTINGS:
        if section in out and isinstance(out[section], Mapping):
            out[section] = {k: v for k, v in out[section].items() if k != key}
    return out


#: The run's part of the provenance attributes (`run_provenance`), in the order stored.
RUN_PROVENANCE_KEYS = ("config_digest", "model", "weights")


def run_provenance(config: Mapping[str, Any]) -> dict[str, Any]:
    """The run's part of the provenance attributes: the digest of ``config``, the model
    architecture and the weights source.

    The workflow computes it once from the sections the activations depend on (``run``,
    ``model``, ``extraction``: the extract job's config) and passes it to every job that writes
    a store as a param, so each store of a run carries its shards' ``config_digest`` and no
    script reads the whole configuration. Those sections rerun the shards when they change,
    so the param reruns nothing the shards would not; a digest of the whole configuration
    would rerun the ICA on a change of ``figures.dpi``. A job's own settings (``top_k``, the
    ICA settings, ...) are params of their own and attributes of their store.

    Parameters
    ----------
    config
        A configuration, or the part of one it should stand for; it must hold ``model``.

    Returns
    -------
    dict
        ``config_digest``, ``model`` (the architecture) and ``weights`` (the configured source).
    """
    model = config.get("model", {})
    return {"config_digest": config_digest(without_performance_settings(config)), "model": model.get("arch"), "weights": model.get("weights")}


def provenance_attrs(
    config: Mapping[str, Any] | None = None,
    *,
    run: Mapping[str, Any] | None = None,
    dataset_digest: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Attributes to attach to a store: config digest, model, weights, versions, time.

    Parameters
    ----------
    config
        The run's configuration (the whole Snakemake config); its digest and the model
        architecture and weights source are recorded.
    run
        Instead of ``config``: those three already computed (`run_provenance`).
    dataset_digest
        Digest of the dataset table (``file_digest(images.csv)``).
    **extra
        Further JSON-serialisable attributes (e.g. ``layer="conv1_1"``).
    """
    attrs: dict[str, Any] = {
        "neurofacets_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if config is not None:
        run = run_provenance(config)
    if run is not None:
        attrs.update((key, run[key]) for key in RUN_PROVENANCE_KEYS)
    if dataset_digest is not None:
        attrs["dataset_digest"] = dataset_digest
    attrs.update(extra)
    return json.loads(json.dumps(attrs, default=str))
