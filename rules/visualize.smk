# Neuron visualisation (docs/design.md §3): receptive-field patches of each neuron's top
# images, their independent components (Picard-O by default), and one picture per neuron on demand.


rule patches:
    """Cut every neuron's counted top-k receptive-field patches from the preprocessed images."""
    input:
        topk=f"{OUT}/topk/{{layer}}.zarr",
        layers=f"{OUT}/model/layers.csv",
        images=f"{OUT}/dataset/images.csv",
        # the patches are cut from the image files: their state (see rule dataset)
        dataset_state=f"{OUT}/dataset/state.json",
    output:
        directory(f"{OUT}/patches/{{layer}}.zarr"),
    params:
        code=script_digest("patches.py"),
        image_size=config["extraction"]["image_size"],
        resize=config["extraction"]["resize"],
        interpolation=config["extraction"]["interpolation"],
        crop_offset=config["extraction"]["crop_offset"],
        provenance=STORE_PROVENANCE,
    threads: config["visualize"]["threads"]
    resources:
        mem_mb=per_thread_mem_mb(PATCHES_MB, PATCHES_THREAD_MB),
    log:
        f"{OUT}/logs/patches/{{layer}}.log",
    benchmark:
        f"{OUT}/benchmarks/patches/{{layer}}.tsv"
    group:
        "visualize"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/patches.py"


rule ica:
    """Independent components of every neuron's patches: modes gray, rgb, uint8."""
    input:
        patches=f"{OUT}/patches/{{layer}}.zarr",
    output:
        directory(f"{OUT}/ica/{{layer}}.zarr"),
    params:
        code=script_digest("ica.py"),
        settings={
            "n_components": config["visualize"]["ica_components"],
            "solver": config["visualize"]["ica_solver"],
            "max_iter": config["visualize"]["ica_max_iter"],
            "tol": config["visualize"]["ica_tol"],
            "seed": config["visualize"]["seed"],
            "restarts": config["visualize"]["ica_restarts"],
            "max_side": config["visualize"]["ica_max_side"],
        },
        provenance=STORE_PROVENANCE,
    threads: config["visualize"]["threads"]
    resources:
        mem_mb=per_thread_mem_mb(ICA_MB, ICA_WORKER_MB),
    log:
        f"{OUT}/logs/ica/{{layer}}.log",
    benchmark:
        f"{OUT}/benchmarks/ica/{{layer}}.tsv"
    group:
        "visualize"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/ica.py"


rule neuron_figure:
    """One neuron's picture, built on demand: results/{run}/neurons/{layer}/{neuron}.png."""
    input:
        patches=f"{OUT}/patches/{{layer}}.zarr",
        ica=f"{OUT}/ica/{{layer}}.zarr",
        metrics=f"{OUT}/metrics/{{layer}}.csv",
        # the concept name, when the run has a class hierarchy (rules/semantics.smk)
        semantics=lambda wildcards: semantics_layer_input(wildcards),
    output:
        f"{OUT}/neurons/{{layer}}/{{neuron}}.png",
    wildcard_constraints:
        neuron=r"\d+",
    params:
        code=script_digest("neuron_figure.py"),
        dpi=config["figures"]["dpi"],
        top_patches=16,
    log:
        f"{OUT}/logs/neuron_figure/{{layer}}/{{neuron}}.log",
    benchmark:
        f"{OUT}/benchmarks/neuron_figure/{{layer}}/{{neuron}}.tsv"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/neuron_figure.py"


STAGE_TARGETS += per_layer(f"{OUT}/patches/{{layer}}.zarr")
STAGE_TARGETS += per_layer(f"{OUT}/ica/{{layer}}.zarr")
