# Stage 3: conceptual encoding (docs/design.md §3): top-k images and CoF per layer, per-neuron
# metrics (sparsity, flatness, MF degree, p-values) and facets, neuron similarity, class
# RDMs and the layer x layer RSA, and a label-permutation null model.
# Only encode_topk reads activations (one layer from every shard, once); everything after
# it works from the small top-k and CoF stores.

ENCODE_ANALYSIS = config["analysis"]
ENCODE_TOP_K = ENCODE_ANALYSIS["top_k"]
ENCODE_LEVEL = ENCODE_ANALYSIS["level"]  # label level analysed: class | coarse
ENCODE_FACET_THRESHOLD = ENCODE_ANALYSIS["facet_threshold"]
ENCODE_PERMUTATIONS = ENCODE_ANALYSIS["null_permutations"]
ENCODE_SEED = ENCODE_ANALYSIS["seed"]


rule encode_topk:
    input:
        shards=shard_stores(),
        images=f"{OUT}/dataset/images.csv",
        classes=f"{OUT}/dataset/classes.csv",
    output:
        topk=directory(f"{OUT}/topk/{{layer}}.zarr"),
        cof=directory(f"{OUT}/cof/{{layer}}.zarr"),
    params:
        top_k=ENCODE_TOP_K,
        provenance=STORE_PROVENANCE,
        code=script_digest("encode_topk.py"),
    resources:
        # the shards' top-k candidates (or the whole layer), from their metadata once they exist
        mem_mb=lambda wildcards, input: encode_topk_mem_mb(input.shards, wildcards.layer, ENCODE_TOP_K),
    log:
        f"{OUT}/logs/encode_topk/{{layer}}.log",
    benchmark:
        f"{OUT}/benchmarks/encode_topk/{{layer}}.tsv"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/encode_topk.py"


rule encode_statistics:
    # four quick computations from the layer's CoF and top-k, in one job (a job's start costs more)
    input:
        # the null model's permutations follow the pictures: the shards' content keys
        shards=shard_stores(),
        cof=f"{OUT}/cof/{{layer}}.zarr",
        topk=f"{OUT}/topk/{{layer}}.zarr",
        images=f"{OUT}/dataset/images.csv",
        classes=f"{OUT}/dataset/classes.csv",
    output:
        metrics=f"{OUT}/metrics/{{layer}}.csv",
        similarity=directory(f"{OUT}/similarity/{{layer}}.zarr"),
        rdm=directory(f"{OUT}/rdm/{{layer}}.zarr"),
        null=f"{OUT}/null/{{layer}}.csv",
    params:
        level=ENCODE_LEVEL,
        permutations=ENCODE_PERMUTATIONS,
        seed=ENCODE_SEED,
        provenance=STORE_PROVENANCE,
        code=script_digest("encode_statistics.py"),
    resources:
        mem_mb=job_mem_mb(ENCODE_SCRIPT_MB + 100),  # classes x classes float64: 8 MB at 1000 classes
    log:
        f"{OUT}/logs/encode_statistics/{{layer}}.log",
    benchmark:
        f"{OUT}/benchmarks/encode_statistics/{{layer}}.tsv"
    group:
        "analysis"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/encode_statistics.py"


rule encode_all_layers:
    # mf_norm and the global-mean facet threshold need every layer's metrics
    input:
        metrics=per_layer(f"{OUT}/metrics/{{layer}}.csv"),
    output:
        f"{OUT}/metrics/all_layers.csv",
    params:
        layers=LAYERS,
        facet_threshold=ENCODE_FACET_THRESHOLD,
        code=script_digest("encode_all_layers.py"),
    resources:
        mem_mb=job_mem_mb(ENCODE_SCRIPT_MB),
    log:
        f"{OUT}/logs/encode_all_layers.log",
    benchmark:
        f"{OUT}/benchmarks/encode_all_layers.tsv"
    group:
        "analysis"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/encode_all_layers.py"


rule encode_similarity_summary:
    input:
        similarity=per_layer(f"{OUT}/similarity/{{layer}}.zarr"),
    output:
        f"{OUT}/similarity/summary.csv",
    params:
        layers=LAYERS,
        code=script_digest("encode_similarity_summary.py"),
    resources:
        mem_mb=job_mem_mb(ENCODE_SCRIPT_MB),
    log:
        f"{OUT}/logs/encode_similarity_summary.log",
    benchmark:
        f"{OUT}/benchmarks/encode_similarity_summary.tsv"
    group:
        "analysis"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/encode_similarity_summary.py"


rule encode_rsa:
    input:
        rdms=per_layer(f"{OUT}/rdm/{{layer}}.zarr"),
    output:
        f"{OUT}/rsa/rsa.csv",
    params:
        layers=LAYERS,
        code=script_digest("encode_rsa.py"),
    resources:
        mem_mb=job_mem_mb(ENCODE_SCRIPT_MB + 100),
    log:
        f"{OUT}/logs/encode_rsa.log",
    benchmark:
        f"{OUT}/benchmarks/encode_rsa.tsv"
    group:
        "analysis"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/encode_rsa.py"


rule encode_null_summary:
    input:
        null=per_layer(f"{OUT}/null/{{layer}}.csv"),
    output:
        f"{OUT}/null/summary.csv",
    params:
        layers=LAYERS,
        code=script_digest("encode_null_summary.py"),
    resources:
        mem_mb=job_mem_mb(ENCODE_SCRIPT_MB),
    log:
        f"{OUT}/logs/encode_null_summary.log",
    benchmark:
        f"{OUT}/benchmarks/encode_null_summary.tsv"
    group:
        "analysis"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/encode_null_summary.py"


STAGE_TARGETS += [
    *per_layer(f"{OUT}/topk/{{layer}}.zarr"),
    *per_layer(f"{OUT}/cof/{{layer}}.zarr"),
    *per_layer(f"{OUT}/metrics/{{layer}}.csv"),
    f"{OUT}/metrics/all_layers.csv",
    *per_layer(f"{OUT}/similarity/{{layer}}.zarr"),
    f"{OUT}/similarity/summary.csv",
    *per_layer(f"{OUT}/rdm/{{layer}}.zarr"),
    f"{OUT}/rsa/rsa.csv",
    *per_layer(f"{OUT}/null/{{layer}}.csv"),
    f"{OUT}/null/summary.csv",
]
