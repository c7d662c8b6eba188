"""Rerun triggers: a rule's code digest follows exactly the package modules its script imports."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from neurofacets import provenance

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO / "workflow" / "scripts").glob("*.py"))
PACKAGE_SRC = Path(provenance.__file__).parent


def _module_names(root: Path) -> list[str]:
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(["neurofacets", *parts]))
    return names


@pytest.fixture
def package_copy(tmp_path, monkeypatch) -> Path:
    """A scratch copy of the package that the digest functions read instead of the real one."""
    root = tmp_path / "neurofacets"
    shutil.copytree(PACKAGE_SRC, root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE_ROOT", root)
    return root


def test_every_script_has_dependencies():
    assert SCRIPTS, "no workflow scripts found"
    for script in SCRIPTS:
        deps = provenance.package_dependencies(script)
        assert "neurofacets" in deps and "neurofacets.logs" in deps, script.name


def test_relative_imports_resolve(tmp_path, package_copy):
    sub = package_copy / "figures"
    (sub / "extra_mod.py").write_text("from ..store import atomic_output\nfrom . import style\n")
    script = tmp_path / "s.py"
    script.write_text("def f():\n    from neurofacets.figures.extra_mod import x\n")
    deps = provenance.package_dependencies(script)
    # parents run on import; relative imports climb levels; lazy (in-function) imports count
    for name in ("neurofacets", "neurofacets.figures", "neurofacets.figures.extra_mod",
                 "neurofacets.store", "neurofacets.figures.style"):
        assert name in deps


def test_digest_changes_exactly_with_the_modules_a_script_depends_on(package_copy):
    scripts = SCRIPTS
    deps = {s: set(provenance.package_dependencies(s)) for s in scripts}
    before = {s: provenance.script_code_digest(s) for s in scripts}
    modules = _module_names(package_copy)
    assert len(modules) > 20
    for name in modules:
        path = provenance._module_file(name)
        original = path.read_bytes()
        path.write_bytes(original + b"\n# edited\n")
        try:
            for s in scripts:
                changed = provenance.script_code_digest(s) != before[s]
                assert changed == (name in deps[s]), f"{s.name} vs edit of {name}"
        finally:
            path.write_bytes(original)


def _runtime_imports(script: Path) -> set[str]:
    """Package modules that executing the script's top-level imports really loads."""
    tree = ast.parse(script.read_text())
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    code = "\n".join(ast.unparse(node) for node in imports)
    probe = (
        "import json, sys\n" + code + "\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'neurofacets')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s.stem in ("extract", "figure", "ica", "dataset")],
                         ids=lambda s: s.stem)
def test_static_dependencies_cover_what_python_imports(script):
    # independent check: what the interpreter loads is a subset of what the AST finds
    # (the AST also sees imports inside functions, which run later)
    assert _runtime_imports(script) <= set(provenance.package_dependencies(script))


def _declared_data(root: Path) -> dict[Path, set[str]]:
    """Each package data file -> the modules whose PACKAGE_DATA claims it."""
    claims: dict[Path, set[str]] = {}
    for name in _module_names(root):
        for path in provenance.package_data_files(name):
            claims.setdefault(path, set()).add(name)
    return claims


def test_every_package_data_file_is_declared_by_a_module(package_copy):
    data = {p for p in package_copy.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")}
    assert data, "the package ships no data files?"
    assert set(_declared_data(package_copy)) == data


def test_digest_follows_the_package_data_a_script_reads(package_copy):
    claims = _declared_data(package_copy)
    deps = {s: set(provenance.package_dependencies(s)) for s in SCRIPTS}
    before = {s: provenance.script_code_digest(s) for s in SCRIPTS}
    for path, modules in sorted(claims.items()):
        original = path.read_bytes()
        path.write_bytes(original + b"\n")
        try:
            for s in SCRIPTS:
                changed = provenance.script_code_digest(s) != before[s]
                assert changed == bool(modules & deps[s]), f"{s.name} vs edit of {path.name}"
        finally:
            path.write_bytes(original)
    assert any(s.stem == "gallery_index" for s in SCRIPTS)


#: the script a rule block runs
RULE_SCRIPT = re.compile(r'script:\s*\n\s*"\.\./workflow/scripts/(\w+\.py)"')


def _rule_blocks(text: str) -> list[str]:
    return re.split(r"(?m)^(?=(?:rule|checkpoint) \w+:)", text)[1:]


def test_every_script_rule_digests_its_own_script():
    # the rerun trigger of a rule is the digest of the script it runs, written the one way
    rules = 0
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in _rule_blocks(smk.read_text()):
            script = RULE_SCRIPT.search(block)
            if not script:
                continue
            rules += 1
            name = block.split(":")[0]
            assert f'code=script_digest("{script.group(1)}")' in block, f"{smk.name}: {name}"
            assert (REPO / "workflow" / "scripts" / script.group(1)).is_file()
    assert rules >= 25
    for smk in (REPO / "rules").glob("*.smk"):
        assert "code_digest(" not in smk.read_text().replace("script_code_digest(", ""), smk.name


def _script_params(script: Path) -> set[str]:
    """The names ``snakemake.params.<name>`` a script reads."""
    names = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "params" and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "snakemake"):
            names.add(node.attr)
    return names


def test_scripts_read_only_what_their_rules_declare():
    """Snakemake reruns a job when its params change; a script that read ``snakemake.config``
    would depend on what no rerun trigger sees, except a performance setting, which changes no
    output by definition (``provenance.PERFORMANCE_SETTINGS``: read from the config so that it
    reruns nothing). Every ``snakemake.params.<name>`` a script reads is declared by each rule
    that runs it."""
    allowed = {f'snakemake.config["{section}"]["{key}"]' for section, key in provenance.PERFORMANCE_SETTINGS}
    for script in SCRIPTS:
        tree = ast.parse(script.read_text())
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr == "config" and isinstance(node.value, ast.Name)
                    and node.value.id == "snakemake"):
                read = parents[parents[node]] if isinstance(parents.get(node), ast.Subscript) else node
                assert ast.unparse(read).replace("'", '"') in allowed, \
                    f"{script.name} reads {ast.unparse(read)}, not a performance setting"
    checked = 0
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in _rule_blocks(smk.read_text()):
            script = RULE_SCRIPT.search(block)
            params = re.search(r"\n    params:\n((?:        .*\n|\s*\n)+)", block)
            if not script or not params or "**" in params.group(1):
                continue
            declared = set(re.findall(r"(?m)^        (\w+)=", params.group(1)))
            read = _script_params(REPO / "workflow" / "scripts" / script.group(1))
            assert read <= declared, f"{smk.name}: {block.split(':')[0]} lacks params {read - declared}"
            checked += 1
    assert checked >= 20
