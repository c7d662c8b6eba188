"""Benchmark of the semantics stage at ImageNet scale: one layer against its top-k selection.

One VGG16-sized layer (512 neurons) on the ImageNet-1k classes (the 1000 WordNet ids of
``tests/data/imagenet1k_wnids.txt``, linked to the packaged WordNet table), 50 images per
class (50,000 images, the validation set's size), k = 100. CoF rows are fabricated: half of
the neurons draw their top images from one random subtree, half from anywhere, and a few
have fewer than k counted images (so several set sizes need a null). Measured side by side:

- ``hierarchy``: link the classes and restrict WordNet to them, with the class distance
  matrix (once per run);
- ``layer``: :func:`neurofacets.semantics.concepts.semantics_table` (concepts, spreads,
  their null with ``--draws`` random sets per set size, 3 depth levels) plus
  ``--permutations`` permuted-label recounts, i.e. what rule ``semantics_layer`` computes
  after reading its inputs;
- ``top-k``: :func:`neurofacets.topk.select_top_k` of the same layer's (50,000 x 512)
  activation matrix, the step of ``encode_topk`` every layer pays anyway;
- the coverage product (neurons x classes) @ (classes x nodes) in int64 (numpy, no BLAS)
  and through float64 BLAS (:func:`~neurofacets.semantics.concepts.exact_matmul`).

Times are the median of ``--repeats`` runs, wall and process CPU (steadier on a shared
machine; ratios are of CPU times). Run: ``python benchmarks/semantics.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from neurofacets.semantics.concepts import exact_matmul, permutation_rows, semantics_table
from neurofacets.semantics.hierarchy import class_hierarchy
from neurofacets.semantics.stage import load_hierarchy
from neurofacets.topk import select_top_k

WNIDS = Path(__file__).parents[1] / "tests" / "data" / "imagenet1k_wnids.txt"


def timed(fn, repeats: int) -> tuple[tuple[float, float], object]:
    """Median wall and process CPU seconds of ``fn()`` over ``repeats`` calls, and its result."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return (statistics.median(walls), statistics.median(cpus)), result


def fake_cof(hierarchy, neurons: int, k: int, rng: np.random.Generator) -> np.ndarray:
    n_classes = hierarchy.n_classes
    cof = np.zeros((neurons, n_classes), dtype=np.int64)
    nodes = np.flatnonzero((hierarchy.classes_under >= 5) & (hierarchy.classes_under <= 200))
    for n in range(neurons):
        counted = k if n % 8 else int(rng.integers(k // 2, k))
        if n % 2:
            pool = np.flatnonzero(hierarchy.covers[:, rng.choice(nodes)])
        else:
            pool = np.arange(n_classes)
        np.add.at(cof[n], rng.choice(pool, size=counted), 1)
    return cof


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--neurons", type=int, default=512)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--permutations", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    wnids = WNIDS.read_text().split()
    wordnet = load_hierarchy("wordnet")

    def link():
        ch = class_hierarchy(wordnet, wnids)
        _ = ch.distance
        return ch

    t_hierarchy, ch = timed(link, args.repeats)
    sizes = np.full(ch.n_classes, args.per_class)
    cof = fake_cof(ch, args.neurons, args.k, rng)
    levels = {f"depth{d}": ch.level_groups(d) for d in (4, 6, 8)}
    # permuted recounts: the same number of images per neuron, classes drawn at random
    permuted = [rng.multivariate_hypergeometric(sizes, args.k, size=args.neurons) for _ in range(args.permutations)]

    def layer():
        table = semantics_table("layer", cof, ch, np.repeat(np.arange(ch.n_classes), sizes), share=0.8,
                                max_concept_classes=0.5, levels=levels, draws=args.draws, seed=0)
        permutation_rows(permuted, ch, share=0.8, max_concept_classes=0.5)
        return table

    t_layer, table = timed(layer, args.repeats)
    n_images = ch.n_classes * args.per_class
    acts = rng.gamma(1.0, size=(n_images, args.neurons)).astype(np.float32)
    acts[rng.random(acts.shape) < 0.3] = 0
    argmax = np.zeros(acts.shape, dtype=np.int32)
    t_topk, _ = timed(lambda: select_top_k("layer", np.arange(n_images), acts, argmax, args.k, 1, 1), args.repeats)
    covers = ch.covers
    t_int, a = timed(lambda: cof @ covers.astype(np.int64), args.repeats)
    t_blas, b = timed(lambda: exact_matmul(cof, covers), args.repeats)
    assert np.array_equal(a, b)
    distinct = len(np.unique(cof.sum(axis=1)))
    print(f"{ch.n_classes} classes, {len(ch.hierarchy)} nodes, {args.neurons} neurons, k = {args.k}, "
          f"{n_images} images, {distinct} set sizes, {args.draws} draws, {args.permutations} permutations; "
          f"facets {table['semantic_facet'].value_counts().to_dict()}")
    print(f"| step | wall s | CPU s (median of {args.repeats}) | CPU ratio |")
    print("|---|---|---|---|")
    rows = [("top-k selection of the layer (encode_topk's core)", t_topk, t_topk),
            ("semantics of the layer (rule semantics_layer's computation)", t_layer, t_topk),
            ("class hierarchy + distances (once per run)", t_hierarchy, t_topk),
            ("coverage product, int64 numpy", t_int, t_int),
            ("coverage product, float64 BLAS (exact_matmul)", t_blas, t_int)]
    for name, (wall, cpu), (_, reference) in rows:
        print(f"| {name} | {wall:.3f} | {cpu:.3f} | {cpu / reference:.3f} |")


if __name__ == "__main__":
    main()
