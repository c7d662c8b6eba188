"""tools/tutorial.py, the generator of docs/tutorial.md, on a run folder made here.

The page's check against a real run (the tiny workflow run) is in tests/test_workflow.py; this
module checks the parts: the tree names kinds of files, not each layer's; a column more or less
changes the page's structure, a number does not; the committed page has every part.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("tutorial", REPO / "tools" / "tutorial.py")
tutorial = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tutorial)

LAYERS = ("conv1", "conv1_1")  # one name the prefix of another
CARD = """<article class="card" id="n{n}" data-neuron="{n}" data-holds="{holds}">
<h2><a href="#n{n}">#{n}</a> <span class="facet MF">MF</span></h2>
<div class="strip-wrap"><div class="strip-labels" aria-hidden="true"><span>gray</span></div><img class="strip" src="cards/n{n:04d}.png" alt="neuron"></div>
<dl class="stats"><dt>MF degree</dt><dd>1.5</dd></dl>
<p class="classes"><span class="label">top classes:</span> a (3)</p>
<p class="heldout"><span class="label">held-out AUROC</span> 0.7 <span class="verdict holds">label holds</span></p>
<p class="links"><a href="similarity.html#n{n}">row</a></p>
</article>"""


def make_run(root: Path, extra_summary_column: str | None = None, value: float = 0.5) -> Path:
    run = root / "results" / "mine"
    for folder in ("model", "metrics", "evaluation", "activations/shard-000.zarr", "activations/shard-001.zarr",
                   "logs/encode_topk", *(f"topk/{layer}.zarr" for layer in LAYERS)):
        (run / folder).mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"layer": LAYERS, "channels": [2, 2]}).to_csv(run / "model" / "layers.csv", index=False)
    for layer in LAYERS:
        (run / "metrics" / f"{layer}.csv").write_text("layer,neuron\n")
        (run / "logs" / "encode_topk" / f"{layer}.log").write_text("")
        cards = run / "gallery" / layer / "cards"
        cards.mkdir(parents=True)
        Image.new("RGB", (4, 2)).save(cards / "n0000.png")
        Image.new("RGB", (4, 2)).save(cards / "n0001.png")
        (run / "gallery" / layer / "index.html").write_text(
            "<html>" + CARD.format(n=0, holds=0) + CARD.format(n=1, holds=1) + "</html>")
    summary = pd.DataFrame({"run": "mine", "layer": LAYERS, "n_neurons": 2, "mean_mf": value})
    if extra_summary_column:
        summary[extra_summary_column] = 0.1
    summary.to_csv(run / "summary.csv", index=False)
    pd.DataFrame({"layer": LAYERS, "median_auroc": value}).to_csv(run / "evaluation" / "summary.csv", index=False)
    (run / ".hidden").write_text("")
    return run


def test_the_tree_names_kinds_of_files(tmp_path):
    run = make_run(tmp_path)
    entries = tutorial.output_entries(run)
    assert "metrics/{layer}.csv" in entries and "metrics/conv1_1.csv" not in entries
    assert "activations/shard-{shard}.zarr/" in entries and "topk/{layer}.zarr/" in entries
    assert "logs/" in entries and [e for e in entries if e.startswith("logs/")] == ["logs/"]  # one line
    assert "gallery/{layer}/cards/" in entries and not any("n0000" in e for e in entries)
    assert not any(".hidden" in e for e in entries)
    drawn = tutorial.tree(entries, "results/mine")
    assert drawn.splitlines()[0] == "results/mine/"
    assert "├── metrics/  # sparsity, flatness, MF degree, facet of each neuron" in drawn
    assert "│   └── {layer}.csv" in drawn


def test_the_card_is_the_deepest_layers_first_that_holds_without_links(tmp_path):
    run = make_run(tmp_path)
    layer_and_card, picture = tutorial.pick_card(run)
    assert layer_and_card.startswith("conv1_1: ")
    assert picture == run / "gallery" / "conv1_1" / "cards" / "n0001.png"
    assert "<a " not in layer_and_card and "similarity.html" not in layer_and_card and "data-" not in layer_and_card
    assert tutorial.card_parts(layer_and_card) == list(tutorial.CARD_PARTS)
    assert tutorial.card_parts(layer_and_card.replace('class="heldout"', "")) == ["card", "facet", "stats",
                                                                                  "classes", "verdict"]


def test_structure_follows_columns_not_numbers(tmp_path):
    def page(root, **kwargs):
        out = root / "docs" / "tutorial.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        assert tutorial.main([str(make_run(root, **kwargs)), "--out", str(out)]) == 0
        assert (out.parent / tutorial.CARD_PICTURE).is_file()
        return out.read_text(encoding="utf-8")

    base = page(tmp_path / "a")
    other_numbers = page(tmp_path / "b", value=0.75)
    more_columns = page(tmp_path / "c", extra_summary_column="mean_mf_ci_low")
    assert base != other_numbers
    assert tutorial.structure(base) == tutorial.structure(other_numbers)
    assert tutorial.structure(base) != tutorial.structure(more_columns)
    assert "`mean_mf_ci_low`" in more_columns  # a new column is named, the table is unchanged
    assert tutorial.structure(base)["headers"] == tutorial.structure(more_columns)["headers"]


@pytest.mark.parametrize("part", ["tree", "columns", "headers", "card"])
def test_the_committed_page_has_every_part(part):
    found = tutorial.structure(tutorial.PAGE.read_text(encoding="utf-8"))[part]
    assert found, f"docs/tutorial.md has no {part}: python tools/tutorial.py results/demo"
    if part == "columns":
        assert len(found) == 2 and "`n_images_listed`" in found[0] and "`frac_label_holds`" in found[1]
