# Stage 1: the image table of the run (and the synthetic probe images of the default run).


rule probes:
    output:
        directory(f"{OUT}/dataset/probes"),
    params:
        images_per_class=config["dataset"]["images_per_class"],
        size=config["dataset"]["probes"]["size"],
        seed=config["dataset"]["probes"]["seed"],
        code=script_digest("probes.py"),
    log:
        f"{OUT}/logs/probes.log",
    benchmark:
        f"{OUT}/benchmarks/probes.tsv"
    group:
        "setup"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/probes.py"


rule dataset:
    input:
        unpack(dataset_inputs),
    output:
        images=f"{OUT}/dataset/images.csv",
        classes=f"{OUT}/dataset/classes.csv",
        skipped=f"{OUT}/dataset/skipped.csv",
    params:
        dataset=config["dataset"],
        extraction=config["extraction"],
        code=script_digest("dataset.py"),
    log:
        f"{OUT}/logs/dataset.log",
    benchmark:
        f"{OUT}/benchmarks/dataset.tsv"
    group:
        "setup"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/dataset.py"
