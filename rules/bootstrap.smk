# Intervals (docs/methods.md#intervals): every layer's per-neuron metrics under resamples of
# the images (stratified by class, drawn in content order), and every resample's headline
# numbers, from which summary.csv and evaluation/summary.csv take their 95 % intervals.
# One read of each layer's activations, a block of neurons at a time.
BOOTSTRAP_RESAMPLES = config["analysis"]["bootstrap"]


rule bootstrap_layer:
    input:
        shards=shard_stores(),
        images=f"{OUT}/dataset/images.csv",
        classes=f"{OUT}/dataset/classes.csv",
    output:
        directory(f"{OUT}/bootstrap/{{layer}}.zarr"),
    params:
        level=config["analysis"]["level"],
        top_k=config["analysis"]["top_k"],
        split_seed=config["analysis"]["seed"],
        seed=config["analysis"]["bootstrap_seed"],
        resamples=BOOTSTRAP_RESAMPLES,
        provenance=STORE_PROVENANCE,
        code=script_digest("bootstrap_layer.py"),
    resources:
        mem_mb=lambda wildcards, input: bootstrap_mem_mb(input.shards, wildcards.layer, BOOTSTRAP_RESAMPLES),
    log:
        f"{OUT}/logs/bootstrap_layer/{{layer}}.log",
    benchmark:
        f"{OUT}/benchmarks/bootstrap_layer/{{layer}}.tsv"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/bootstrap_layer.py"


rule bootstrap_draws:
    input:
        stores=per_layer(f"{OUT}/bootstrap/{{layer}}.zarr"),
    output:
        f"{OUT}/bootstrap/summary_draws.csv",
    params:
        layers=LAYERS,
        facet_threshold=config["analysis"]["facet_threshold"],
        run=RUN,
        code=script_digest("bootstrap_draws.py"),
    resources:
        mem_mb=lambda wildcards, input: bootstrap_draws_mem_mb(input.stores, BOOTSTRAP_RESAMPLES),
    log:
        f"{OUT}/logs/bootstrap_draws.log",
    benchmark:
        f"{OUT}/benchmarks/bootstrap_draws.tsv"
    group:
        "analysis"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/bootstrap_draws.py"


STAGE_TARGETS += [
    *per_layer(f"{OUT}/bootstrap/{{layer}}.zarr"),
    f"{OUT}/bootstrap/summary_draws.csv",
]
