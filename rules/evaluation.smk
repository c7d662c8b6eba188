# Evaluation (docs/evaluation.md): how much each neuron's verdict is worth. Each layer's
# explanations formed on one half of the images and scored on the other (AUROC, AUPRC,
# correlation; a permutation test of the held-out labels with BH q-values), the verdicts of the two halves
# side by side (split-half reliability), and a label-permutation test of each neuron's
# selectivity with Benjamini-Hochberg q-values. One read of each layer's activations; no
# forward pass.
from neurofacets.figure_table import CAT_ENCODE, SUB_EVALUATION

EVALUATION = config["evaluation"]


rule evaluate_layer:
    input:
        shards=shard_stores(),
        topk=f"{OUT}/topk/{{layer}}.zarr",
        images=f"{OUT}/dataset/images.csv",
        classes=f"{OUT}/dataset/classes.csv",
        hierarchy=evaluation_hierarchy_input,
    output:
        f"{OUT}/evaluation/{{layer}}.csv",
    params:
        level=config["analysis"]["level"],
        top_k=config["analysis"]["top_k"],
        seed=config["analysis"]["seed"],
        chance_draws=EVALUATION["chance_draws"],
        label_draws=EVALUATION["label_draws"],
        permutations=EVALUATION["permutations"],
        share=SEMANTICS["concept_share"],
        max_concept_classes=SEMANTICS["max_concept_classes"],
        code=script_digest("evaluate_layer.py"),
    resources:
        mem_mb=lambda wildcards, input: evaluate_mem_mb(input.shards, wildcards.layer),
    log:
        f"{OUT}/logs/evaluate_layer/{{layer}}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate_layer/{{layer}}.tsv"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/evaluate_layer.py"


rule evaluation_summary:
    input:
        tables=per_layer(f"{OUT}/evaluation/{{layer}}.csv"),
        draws=f"{OUT}/bootstrap/summary_draws.csv",
    output:
        all_layers=f"{OUT}/evaluation/all_layers.csv",
        summary=report(
            f"{OUT}/evaluation/summary.csv",
            caption="../workflow/report/evaluation_summary.rst",
            category=CAT_ENCODE,
            subcategory=SUB_EVALUATION,
        ),
    params:
        layers=LAYERS,
        facet_threshold=config["analysis"]["facet_threshold"],
        run=RUN,
        code=script_digest("evaluation_summary.py"),
    resources:
        mem_mb=job_mem_mb(ENCODE_SCRIPT_MB),
    log:
        f"{OUT}/logs/evaluation_summary.log",
    benchmark:
        f"{OUT}/benchmarks/evaluation_summary.tsv"
    group:
        "analysis"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/evaluation_summary.py"


STAGE_TARGETS += [
    *per_layer(f"{OUT}/evaluation/{{layer}}.csv"),
    f"{OUT}/evaluation/all_layers.csv",
    f"{OUT}/evaluation/summary.csv",
]
