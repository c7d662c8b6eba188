# Stage 6: what users browse. The run's summary table (and the figure comparing runs when
# config compare_runs lists other runs' summary.csv), and the static neuron gallery
# (results/<run>/gallery/index.html, one page per layer). `snakemake --report report.html`
# collects every figure and table marked with report(...) in rules/figures.smk and here,
# under the description below.
from neurofacets.config import preprocessing_label
from neurofacets.figure_table import CAT_SUMMARY, FIGURES_BY_STEM


report: "../workflow/report/workflow.rst"


GALLERY_PATCHES = config["figures"]["gallery_patches"]
COMPARE_RUNS = [path for path in config["compare_runs"] if path != f"{OUT}/summary.csv"]


rule summary:
    input:
        metrics=f"{OUT}/metrics/all_layers.csv",
        similarity_summary=f"{OUT}/similarity/summary.csv",
        layers=f"{OUT}/model/layers.csv",
        # the images analysed of those listed (n_images, n_images_listed)
        images=f"{OUT}/dataset/images.csv",
        dataset_skipped=f"{OUT}/dataset/skipped.csv",
        extraction_skipped=f"{OUT}/activations/skipped.csv",
        # every resample's headline numbers: the 95 % intervals
        draws=f"{OUT}/bootstrap/summary_draws.csv",
    output:
        report(
            f"{OUT}/summary.csv",
            caption="../workflow/report/summary.rst",
            category=CAT_SUMMARY,
            subcategory="This run",
        ),
    params:
        run=RUN,
        preprocessing=preprocessing_label(config["extraction"]),
        code=script_digest("summary.py"),
    resources:
        mem_mb=job_mem_mb(FIGURE_SCRIPT_MB),
    log:
        f"{OUT}/logs/summary.log",
    benchmark:
        f"{OUT}/benchmarks/summary.tsv"
    group:
        "figures"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/summary.py"


# The figure comparing this run with the runs config compare_runs lists. That key names
# summary files, not run folders, so the summaries are given here rather than filled in from
# the figure's pattern.
figure_rule(
    FIGURES_BY_STEM["compare_runs"],
    OUT,
    {"summaries": [f"{OUT}/summary.csv", *COMPARE_RUNS]},
    config["figures"],
)


rule gallery_layer:
    # One layer's pages, card images and heatmaps; layers build in parallel.
    input:
        metrics=f"{OUT}/metrics/all_layers.csv",
        layers=f"{OUT}/model/layers.csv",
        ica=f"{OUT}/ica/{{layer}}.zarr",
        patches=f"{OUT}/patches/{{layer}}.zarr",
        similarity=f"{OUT}/similarity/{{layer}}.zarr",
        # each card's held-out score, selectivity q and split-half verdicts (rules/evaluation.smk)
        evaluation=f"{OUT}/evaluation/all_layers.csv",
        # concept names, when the run has a class hierarchy (rules/semantics.smk)
        semantics=lambda wildcards: semantics_layer_input(wildcards),
        hierarchy=lambda wildcards: semantics_hierarchy_input(wildcards),
    output:
        directory(f"{OUT}/gallery/{{layer}}"),
    params:
        run=RUN,
        n_patches=GALLERY_PATCHES,
        code=script_digest("gallery_layer.py"),
    resources:
        mem_mb=job_mem_mb(GALLERY_LAYER_MB),
    log:
        f"{OUT}/logs/gallery_layer/{{layer}}.log",
    benchmark:
        f"{OUT}/benchmarks/gallery_layer/{{layer}}.tsv"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/gallery_layer.py"


rule gallery_index:
    input:
        layer_pages=per_layer(f"{OUT}/gallery/{{layer}}"),
        metrics=f"{OUT}/metrics/all_layers.csv",
        layers=f"{OUT}/model/layers.csv",
        similarity_summary=f"{OUT}/similarity/summary.csv",
    output:
        index=f"{OUT}/gallery/index.html",
        assets=directory(f"{OUT}/gallery/assets"),
        overview_mf=f"{OUT}/gallery/overview-mf.png",
        overview_facets=f"{OUT}/gallery/overview-facets.png",
    params:
        run=RUN,
        code=script_digest("gallery_index.py"),
    resources:
        mem_mb=job_mem_mb(FIGURE_SCRIPT_MB),
    log:
        f"{OUT}/logs/gallery_index.log",
    benchmark:
        f"{OUT}/benchmarks/gallery_index.tsv"
    group:
        "figures"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/gallery_index.py"


STAGE_TARGETS += [
    f"{OUT}/summary.csv",
    f"{OUT}/gallery/index.html",
    *(FIGURES_BY_STEM["compare_runs"].outputs(OUT, FIGURE_FORMATS) if COMPARE_RUNS else []),
]
