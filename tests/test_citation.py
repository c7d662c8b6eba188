"""How to cite and under which licence (issue 27): CITATION.cff parses and states the package's
version, the one set in pyproject.toml and read from the installed metadata."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import yaml

import neurofacets

REPO = Path(__file__).resolve().parents[1]


def test_citation_file_parses_and_states_the_package_version():
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    installed = importlib.metadata.version("neurofacets")
    assert citation["version"] == pyproject["project"]["version"] == installed == neurofacets.__version__
    assert citation["cff-version"] == "1.2.0" and citation["type"] == "software"
    assert {"message", "title", "authors"} <= set(citation)
    assert citation["license"] == "MIT"


def test_citation_names_the_paper_it_reproduces():
    (paper,) = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))["references"]
    assert paper["authors"][0]["family-names"] == "Sadeghi" and paper["year"] == 2018
    text = REPO.parent / "shared" / "paper" / "conceptual-content-vgg16.txt"
    if text.exists():  # the title as the paper writes it (the paper is not in the repository)
        assert " ".join(paper["title"].split()) == text.read_text(encoding="utf-8").splitlines()[0].strip()


def test_licence_is_mit_with_the_copyright_line():
    licence = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("MIT License\n\nCopyright (c) 2026 the neurofacets developers\n")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "## Citing" in readme and "## Licence" in readme
