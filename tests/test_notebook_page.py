"""docs/notebook.md runs as written: its python blocks, in order, on the tiny run's results."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "notebook.md"
#: The outputs reference's snippets start from the same line (neurofacets.reference_docs).
OUTPUTS_PAGE = REPO / "docs" / "reference" / "outputs.md"
#: The line of the page's first block that names the run's folder; the test points it elsewhere.
RUN_LINE = 'run = Path("results/demo")'


def python_blocks(text: str) -> list[str]:
    """The ```python fenced blocks of a Markdown page, in order."""
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


def test_page_has_blocks_starting_from_run():
    blocks = python_blocks(PAGE.read_text())
    assert len(blocks) >= 5
    assert RUN_LINE in blocks[0]
    # layer names come from the data, so the page works on every model's run
    assert not re.search(r"conv\d_\d", "\n".join(blocks))


def run_page(page: Path, results: Path) -> dict:
    """Execute a page's python blocks in order, in one namespace, on the run folder ``results``."""
    blocks = python_blocks(page.read_text())
    assert RUN_LINE in blocks[0], f"{page}: the first python block must set {RUN_LINE}"
    blocks[0] = blocks[0].replace(RUN_LINE, f"run = Path({str(results)!r})")
    namespace: dict = {"__name__": "__notebook__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{page.name} block {i + 1}", "exec"), namespace)  # noqa: S102 - the page is ours
    return namespace


@pytest.mark.e2e
def test_notebook_page_runs_on_the_tiny_run(tiny_run):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = tiny_run / "results" / "tiny"
    try:
        namespace = run_page(PAGE, results)
        assert namespace["run"] == results
        assert namespace["layer"] in namespace["layers"]
        assert len(namespace["summary"]) == len(namespace["layers"])
        assert namespace["components"].ndim == 4 and plt.get_fignums()
    finally:
        plt.close("all")


@pytest.mark.e2e
def test_outputs_reference_snippets_run_on_the_tiny_run(tiny_run):
    namespace = run_page(OUTPUTS_PAGE, tiny_run / "results" / "tiny")
    assert namespace["layer"] == namespace["layers"][-1] and namespace["patches"].ndim == 4
