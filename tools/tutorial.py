"""Write docs/tutorial.md, "what you should see", from a finished run.

    python tools/tutorial.py results/demo                 # writes docs/tutorial.md and its card picture
    python tools/tutorial.py results/demo --out /tmp/t.md # elsewhere

The page shows the run's output tree (every file and store, one line per kind: a layer's name
is written `{layer}`, a shard's number `{shard}`), the first rows of `summary.csv` and
`evaluation/summary.csv` with every column named, and one gallery card (its picture and its
text). The committed page is generated from the default run; tests/test_workflow.py generates
the page from the tiny test run and checks that its structure (the tree, the column names, the
card's parts) equals the committed page's: a stage that adds, moves or renames an output, or a
column, fails it until the page is regenerated. Numbers are not compared (they are the run's).
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "tutorial.md"
#: The card picture, beside the page's other pictures (docs/figures/).
CARD_PICTURE = Path("figures") / "tutorial_card.png"

#: Folders shown as one line: stores (zarr), generated images, one file per job.
LEAF_FOLDERS = {
    "dataset/probes": "the generated probe images, `<class>/<class>_<i>.png`",
    "logs": "one log per job, `<rule>.log` or `<rule>/{layer}.log`",
    "benchmarks": "one timing per job (Snakemake's `benchmark:`), `.tsv`",
    "gallery/{layer}/cards": "one picture per neuron's card, `n<neuron>.png`",
}
#: What each top-level entry is (the outputs reference has every column and array).
WHAT = {
    "activations": "per image and neuron: max activation and its position, one store per shard",
    "bootstrap": "resampled photos: each draw's numbers, behind the 95 % intervals",
    "cof": "class-occurrence counts (CoF) of each neuron's top-k images",
    "dataset": "the image table, the classes, the files left out",
    "evaluation": "held-out scores, split-half reliability, selectivity test",
    "figures": "the paper's figures and more, PDF and PNG",
    "gallery": "one card per neuron, open `gallery/index.html`",
    "ica": "independent components of each neuron's patches",
    "metrics": "sparsity, flatness, MF degree, facet of each neuron",
    "model": "the analysed layers and their receptive fields",
    "null": "the chance level of the layer statistics (labels permuted)",
    "patches": "receptive-field patches of each neuron's top images",
    "rdm": "class dissimilarity matrices",
    "rsa": "layer x layer similarity of the class geometry",
    "semantics": "concepts on the class hierarchy (classes with WordNet ids, or a hierarchy CSV)",
    "similarity": "neuron x neuron similarity of the CoF rows",
    "summary.csv": "one row per layer: the run's headline numbers and their 95 % intervals",
    "tables": "the paper's Tables 2-3",
    "topk": "each neuron's top-k images",
}
#: The columns shown of each summary's first rows (the rest are named below the table).
SHOWN_COLUMNS = {
    "summary.csv": ("layer", "n_neurons", "n_mf", "n_sf", "n_dead", "mean_mf", "mean_similarity", "n_images"),
    "evaluation/summary.csv": ("layer", "n_scored", "median_auroc", "median_auroc_chance", "frac_label_holds",
                               "mf_rho", "facet_kappa", "frac_selective_true"),
}
ROWS = 3


def _layers(run: Path) -> list[str]:
    return pd.read_csv(run / "model" / "layers.csv")["layer"].astype(str).tolist()


def _generic(relative: str, layers: Sequence[str]) -> str:
    """A path with its layer names written `{layer}` and shard numbers `{shard}`."""
    parts = []
    for part in relative.split("/"):
        for layer in sorted(layers, key=len, reverse=True):
            if part == layer or part.startswith(layer + "."):
                part = "{layer}" + part[len(layer):]
                break
        parts.append(re.sub(r"^shard-\d+", "shard-{shard}", part))
    return "/".join(parts)


def output_entries(run: Path) -> list[str]:
    """Every kind of output of ``run``: generic relative paths, folders ending in ``/``,
    a zarr store or a `LEAF_FOLDERS` folder as one entry (hidden files left out)."""
    layers = _layers(run)
    found: set[str] = set()

    def walk(folder: Path) -> None:
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):
                continue
            generic = _generic(str(path.relative_to(run)), layers)
            if path.is_dir() and not path.name.endswith(".zarr") and generic not in LEAF_FOLDERS:
                found.add(generic + "/")
                walk(path)
            else:
                found.add(generic + ("/" if path.is_dir() else ""))

    walk(run)
    return sorted(found)


def tree(entries: Iterable[str], root: str) -> str:
    """``entries`` (generic paths, folders ending in ``/``) drawn as a tree under ``root``."""
    children: dict[str, list[str]] = {}
    for entry in entries:
        parent = entry.rstrip("/").rpartition("/")[0]
        children.setdefault(parent, []).append(entry)
    lines = [root.rstrip("/") + "/"]

    def draw(parent: str, prefix: str) -> None:
        kids = sorted(children.get(parent, []))
        for i, entry in enumerate(kids):
            last = i == len(kids) - 1
            name = entry.rstrip("/").rpartition("/")[2] + ("/" if entry.endswith("/") else "")
            note = WHAT.get(entry.rstrip("/")) or LEAF_FOLDERS.get(entry.rstrip("/"))
            lines.append(f"{prefix}{'└── ' if last else '├── '}{name}" + (f"  # {note}" if note else ""))
            if entry.rstrip("/") in children:
                draw(entry.rstrip("/"), prefix + ("    " if last else "│   "))

    draw("", "")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "NaN" if value != value else f"{value:.3g}"
    return str(value).replace("|", "\\|")


def first_rows(csv: Path, shown: Sequence[str], rows: int = ROWS) -> tuple[str, list[str]]:
    """A Markdown table of the first ``rows`` rows of ``csv`` in the ``shown`` columns it has,
    and every column of the file."""
    table = pd.read_csv(csv)
    columns = [c for c in shown if c in table.columns]
    lines = ["| " + " | ".join(f"`{c}`" for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for _, row in table.head(rows).iterrows()]
    return "\n".join(lines), list(table.columns)


def pick_card(run: Path) -> tuple[str, Path]:
    """The deepest layer's first card whose label holds (else its first card): the card's HTML
    without its links (they point into the gallery) and its picture."""
    layer = _layers(run)[-1]
    page = (run / "gallery" / layer / "index.html").read_text(encoding="utf-8")
    cards = re.findall(r'<article class="card".*?</article>', page, flags=re.S)
    if not cards:
        raise ValueError(f"{run}/gallery/{layer}/index.html has no card")
    card = next((c for c in cards if 'data-holds="1"' in c), cards[0])
    picture = run / "gallery" / layer / re.search(r'<img class="strip"[^>]*src="([^"]+)"', card).group(1)
    card = re.sub(r'<p class="links">.*?</p>\s*', "", card, flags=re.S)
    card = re.sub(r"<a [^>]*>(.*?)</a>", r"\1", card, flags=re.S)
    card = re.sub(r'<div class="strip-wrap">.*?<img[^>]*></div>\s*', "", card, flags=re.S)  # the picture above
    card = re.sub(r'\s(id|data-[\w-]+)="[^"]*"', "", card)
    return f"{layer}: " + card.strip(), picture


#: The parts every gallery card has (a dead neuron's, one without a p-value or a concept too).
CARD_PARTS = ("card", "facet", "stats", "classes", "heldout", "verdict")


def card_parts(card_html: str) -> list[str]:
    """Which of `CARD_PARTS` the card has (its elements' first class names; no text)."""
    classes = {match.split()[0] for match in re.findall(r'<\w+\s+class="([^"]+)"', card_html)}
    return [part for part in CARD_PARTS if part in classes]


def render(run: Path, shown_as: str) -> tuple[str, Path]:
    """The page's Markdown for ``run`` (written as ``shown_as``) and the card picture to copy."""
    entries = output_entries(run)
    summary, summary_columns = first_rows(run / "summary.csv", SHOWN_COLUMNS["summary.csv"])
    evaluation, evaluation_columns = first_rows(run / "evaluation" / "summary.csv",
                                                SHOWN_COLUMNS["evaluation/summary.csv"])
    layer_and_card, picture = pick_card(run)
    layer, _, card = layer_and_card.partition(": ")
    n_layers = len(_layers(run))
    text = f"""<!-- generated by python tools/tutorial.py {shown_as} from that run; do not edit -->

# Tutorial: what you should see

`pip install -e . && snakemake --cores 2` runs the default configuration
(`config/config.yaml`: ImageNet VGG16 weights on 288 synthetic probe images of 12 classes)
and writes everything to `{shown_as}/`. This page shows what that run wrote, generated from it by
`tools/tutorial.py` (CI checks that the tree and the column names below are what a run writes
today). How long it takes and how much it writes: [the default run's table](benchmarks/default_run.md).

## 1. The output tree

Each line is one kind of file: `{{layer}}` stands for each of the {n_layers} analysed layers
(`model/layers.csv`), `{{shard}}` for each extraction job. Every table's columns and every
store's arrays: [Outputs reference](reference/outputs.md).

```text
{tree(entries, shown_as)}
```

## 2. The headline numbers: `summary.csv`

One row per layer; the first {ROWS} rows, a few of the columns
([all of them, explained](reference/outputs.md#summarycsv)):

{summary}

Every column: {", ".join(f"`{c}`" for c in summary_columns)}.

A neuron is `MF` (multifaceted) when its MF degree is above the threshold, `SF` otherwise, dead
when no image excites it ([Glossary](glossary.md)).

## 3. How much the verdicts are worth: `evaluation/summary.csv`

One row per layer; the first {ROWS} rows, a few of the columns
([all of them, explained](reference/outputs.md#evaluationsummarycsv); what to make of them:
[Should I trust this neuron?](evaluation.md#should-i-trust-this-neuron)):

{evaluation}

Every column: {", ".join(f"`{c}`" for c in evaluation_columns)}.

## 4. A gallery card

`{shown_as}/gallery/index.html` opens the gallery: one page per layer, one card per neuron.
A card of `{layer}`: its independent components (top row gray, middle row colour) and its best
receptive-field patches (bottom row), then its numbers:

![a gallery card of {layer}]({CARD_PICTURE.as_posix()})

<div class="tutorial-card" markdown="0">
{card}
</div>

What the card's words mean: [Neuron visualisation](visualisation.md), [Glossary](glossary.md).
"""
    return text, picture


def structure(page: str) -> dict[str, object]:
    """What the check compares of a page: the tree, every column list, the card's parts."""
    tree_block = re.search(r"```text\n(.*?)```", page, flags=re.S)
    root = tree_block.group(1).splitlines()[0] if tree_block else ""
    card = re.search(r'<div class="tutorial-card" markdown="0">(.*?)</div>\n', page, flags=re.S)
    return {
        "tree": tree_block.group(1).replace(root, "<run>/", 1) if tree_block else None,
        "columns": re.findall(r"^Every column: (.*)$", page, flags=re.M),
        "headers": re.findall(r"^\| `layer` \|.*$", page, flags=re.M),
        "card": card_parts(card.group(1)) if card else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run's folder, e.g. results/demo")
    parser.add_argument("--out", type=Path, default=PAGE, help=f"the page to write (default {PAGE})")
    args = parser.parse_args(argv)
    shown_as = str(args.run).rstrip("/")
    if args.run.is_absolute():
        shown_as = f"results/{args.run.name}"
    text, picture = render(args.run, shown_as)
    args.out.write_text(text, encoding="utf-8")
    (args.out.parent / CARD_PICTURE).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(picture, args.out.parent / CARD_PICTURE)
    print(f"wrote {args.out} and {args.out.parent / CARD_PICTURE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
