# Stage 2: the model (weights, layer geometry) and one-pass sharded activation extraction.


rule weights:
    input:
        # a local weights file is an input, so replacing it reruns what depends on it
        local=lambda wc: (
            [config["model"]["weights"]]
            if config["model"]["weights"].endswith((".pth", ".pt", ".safetensors"))
            else []
        ),
    output:
        weights_file(),
    params:
        source=config["model"]["weights"],
        arch=config["model"]["arch"],
        # what the checkpoint must cover (every tensor up to the last analysed layer), and how to fill the rest
        layers=config["model"]["layers"],
        image_size=config["extraction"]["image_size"],
        partial_weights=config["model"]["partial_weights"],
        code=script_digest("weights.py"),
    resources:
        mem_mb=job_mem_mb(WEIGHTS_MB),
    log:
        f"{OUT}/logs/weights.log",
    benchmark:
        f"{OUT}/benchmarks/weights.tsv"
    group:
        "setup"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/weights.py"


rule layers:
    output:
        f"{OUT}/model/layers.csv",
    params:
        arch=config["model"]["arch"],
        layers=config["model"]["layers"],
        image_size=config["extraction"]["image_size"],
        code=script_digest("layers.py"),
    resources:
        mem_mb=job_mem_mb(LAYERS_MB),
    log:
        f"{OUT}/logs/layers.log",
    benchmark:
        f"{OUT}/benchmarks/layers.tsv"
    group:
        "setup"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/layers.py"


rule extract:
    input:
        images=f"{OUT}/dataset/images.csv",
        # changes with the image files even where images.csv does not (an image overwritten)
        dataset_state=f"{OUT}/dataset/state.json",
        weights=weights_file(),
    output:
        directory(f"{OUT}/activations/shard-{{shard}}.zarr"),
    params:
        shard=lambda wc: int(wc.shard),
        config=EXTRACTION_CONFIG,
        code=script_digest("extract.py"),
    # DataLoader workers + the model; the workers are read from the config by the script, not a
    # param: they change no byte of the shard, so changing them reruns nothing
    threads: max(2, config["extraction"]["workers"] + 1)
    resources:
        gpu=uses_gpu(),
        mem_mb=extract_mem_mb(config["extraction"], on_gpu=uses_gpu() > 0),
    log:
        f"{OUT}/logs/extract/shard-{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/extract/shard-{{shard}}.tsv"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/extract.py"


rule skipped_images:
    input:
        shard_stores(),
    output:
        f"{OUT}/activations/skipped.csv",
    params:
        code=script_digest("skipped_images.py"),
    log:
        f"{OUT}/logs/skipped_images.log",
    group:
        "analysis"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/skipped_images.py"


STAGE_TARGETS.append(f"{OUT}/activations/skipped.csv")
