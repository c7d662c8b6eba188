# Semantics (beyond the paper): each neuron on the class hierarchy. For datasets whose
# classes are WordNet nouns (ImageNet, Tiny-ImageNet) or that come with a hierarchy CSV:
# a concept name per neuron, its semantic spread against chance, its semantic facet, and
# the metrics with the classes merged up the hierarchy. The checkpoint links the classes
# to the hierarchy; a dataset it cannot link (e.g. the probe images) skips the stage with a
# log line saying why, and nothing below it is built. The stage's figure (semantic_facets,
# needs_hierarchy in the table of figures) is made with the others in rules/figures.smk and
# is a target only here (semantics_targets).
import logging

from neurofacets.figure_table import CAT_ENCODE


include: "semantics_common.smk"


if SEMANTICS_SOURCE == "none":
    logging.getLogger("neurofacets").warning("semantics stage skipped: semantics.hierarchy is 'none'")


checkpoint semantics_hierarchy:
    input:
        unpack(semantics_hierarchy_inputs),
    output:
        f"{OUT}/semantics/hierarchy.csv",
    params:
        source=SEMANTICS_SOURCE,
        code=script_digest("semantics_hierarchy.py"),
    resources:
        mem_mb=1000,
    log:
        f"{OUT}/logs/semantics_hierarchy.log",
    benchmark:
        f"{OUT}/benchmarks/semantics_hierarchy.tsv"
    group:
        "setup"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/semantics_hierarchy.py"


rule semantics_layer:
    input:
        shards=shard_stores(),
        topk=f"{OUT}/topk/{{layer}}.zarr",
        images=f"{OUT}/dataset/images.csv",
        classes=f"{OUT}/dataset/classes.csv",
        hierarchy=f"{OUT}/semantics/hierarchy.csv",
    output:
        table=f"{OUT}/semantics/{{layer}}.csv",
        null=f"{OUT}/semantics/null/{{layer}}.csv",
    params:
        share=SEMANTICS["concept_share"],
        max_concept_classes=SEMANTICS["max_concept_classes"],
        levels=SEMANTICS["levels"],
        draws=SEMANTICS["spread_draws"],
        permutations=SEMANTICS["permutations"],
        seed=config["analysis"]["seed"],
        code=script_digest("semantics_layer.py"),
    resources:
        mem_mb=2000,
    log:
        f"{OUT}/logs/semantics_layer/{{layer}}.log",
    benchmark:
        f"{OUT}/benchmarks/semantics_layer/{{layer}}.tsv"
    group:
        "analysis"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/semantics_layer.py"


rule semantics_summary:
    input:
        tables=per_layer(f"{OUT}/semantics/{{layer}}.csv"),
        nulls=per_layer(f"{OUT}/semantics/null/{{layer}}.csv"),
        layers=f"{OUT}/model/layers.csv",
        images=f"{OUT}/dataset/images.csv",
        classes=f"{OUT}/dataset/classes.csv",
        hierarchy=f"{OUT}/semantics/hierarchy.csv",
    output:
        summary=f"{OUT}/semantics/summary.csv",
        concepts=report(
            f"{OUT}/tables/concepts.csv",
            caption="../workflow/report/concepts.rst",
            category=CAT_ENCODE,
            subcategory="Semantics",
        ),
    params:
        run=RUN,
        code=script_digest("semantics_summary.py"),
    resources:
        mem_mb=1000,
    log:
        f"{OUT}/logs/semantics_summary.log",
    benchmark:
        f"{OUT}/benchmarks/semantics_summary.tsv"
    group:
        "analysis"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/semantics_summary.py"


STAGE_TARGETS.append(semantics_targets)
