# Stage 1: the image table of the run (and the synthetic probe images of the default run).


rule probes:
    output:
        directory(f"{OUT}/dataset/probes"),
    params:
        images_per_class=config["dataset"]["probes"]["images_per_class"],
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
        # the params' state, for the rules that read the image files (extract, patches)
        state=f"{OUT}/dataset/state.json",
    params:
        dataset=config["dataset"],
        extraction=EXTRACTION_CONFIG["extraction"],
        # the evaluation splits each class (or coarse group) in two halves: checked here, before extraction
        level=config["analysis"]["level"],
        # the listed files' paths, sizes and times: adding, removing or overwriting one reruns this job
        state=dataset_state_param,
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
