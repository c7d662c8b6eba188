# Stage 5: every figure of the paper (DESIGN.md §5) and Tables 2-3.
# One rule per figure, each reading only the tables and stores its figure shows, so
# `snakemake results/<run>/figures/<stem>.pdf` on a run whose inputs exist runs one job.
# Every rule writes all configured formats (figures.format); the report embeds one of
# them (PNG where built) with the caption in workflow/report/<stem>.rst.

FIGURE_CONFIG = config.get("figures", {})
FIGURE_FORMATS = FIGURE_CONFIG.get("format", ["pdf", "png"])
FIGURE_DPI = FIGURE_CONFIG.get("dpi", 150)
FIGURE_EXAMPLES = FIGURE_CONFIG.get("examples_per_layer", 1)
REPORT_FORMAT = next(fmt for fmt in ("png", "svg", "pdf") if fmt in FIGURE_FORMATS)

CAT_ENCODE = "1. Conceptual encoding: sparsity, flatness, MF degree"
CAT_VISUALIZE = "2. Neuron visualisation: independent components"
CAT_SIMILARITY = "3. Neuronal similarity"
CAT_SUMMARY = "4. Run summary"


# stem -> (report category, subcategory), in the order the report lists them.
FIGURE_REPORT = {
    "fig1_sparsity_flatness": (CAT_ENCODE, "Main figures"),
    "fig2_mf_distribution": (CAT_ENCODE, "Main figures"),
    "fig3_mf_sf_counts": (CAT_ENCODE, "Main figures"),
    "appA_distributions": (CAT_ENCODE, "Appendix"),
    "fig4_facet_examples": (CAT_VISUALIZE, "Main figures"),
    "appB_ica_by_mf": (CAT_VISUALIZE, "Appendix"),
    "fig5_similarity": (CAT_SIMILARITY, "Main figures"),
    "appC_heatmaps": (CAT_SIMILARITY, "Appendix"),
    "compare_runs": (CAT_SUMMARY, "Compared with other runs"),  # rule in rules/report.smk
}
# stem -> its output files; the report format is marked for the report with its caption.
# (`report(` may not start a line outside a rule: the parser would read the `report:` directive.)
FIGURE_FILES = {
    stem: [
        (report(path, caption=f"../workflow/report/{stem}.rst", category=cat, subcategory=sub))
        if path.endswith(f".{REPORT_FORMAT}")
        else path
        for path in expand(f"{OUT}/figures/{stem}.{{fmt}}", fmt=FIGURE_FORMATS)
    ]
    for stem, (cat, sub) in FIGURE_REPORT.items()
}


rule fig1_sparsity_flatness:
    input:
        metrics=f"{OUT}/metrics/all_layers.csv",
        layers=f"{OUT}/model/layers.csv",
    output:
        FIGURE_FILES["fig1_sparsity_flatness"],
    params:
        stem="fig1_sparsity_flatness",
        dpi=FIGURE_DPI,
        options={},
        code=script_digest("figure.py"),
    resources:
        mem_mb=job_mem_mb(FIGURE_SCRIPT_MB),
    log:
        f"{OUT}/logs/fig1_sparsity_flatness.log",
    benchmark:
        f"{OUT}/benchmarks/fig1_sparsity_flatness.tsv"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/figure.py"


rule fig2_mf_distribution:
    input:
        metrics=f"{OUT}/metrics/all_layers.csv",
        layers=f"{OUT}/model/layers.csv",
    output:
        FIGURE_FILES["fig2_mf_distribution"],
    params:
        stem="fig2_mf_distribution",
        dpi=FIGURE_DPI,
        options={},
        code=script_digest("figure.py"),
    resources:
        mem_mb=job_mem_mb(FIGURE_SCRIPT_MB),
    log:
        f"{OUT}/logs/fig2_mf_distribution.log",
    benchmark:
        f"{OUT}/benchmarks/fig2_mf_distribution.tsv"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/figure.py"


rule fig3_mf_sf_counts:
    input:
        metrics=f"{OUT}/metrics/all_layers.csv",
        layers=f"{OUT}/model/layers.csv",
    output:
        FIGURE_FILES["fig3_mf_sf_counts"],
    params:
        stem="fig3_mf_sf_counts",
        dpi=FIGURE_DPI,
        options={},
        code=script_digest("figure.py"),
    resources:
        mem_mb=job_mem_mb(FIGURE_SCRIPT_MB),
    log:
        f"{OUT}/logs/fig3_mf_sf_counts.log",
    benchmark:
        f"{OUT}/benchmarks/fig3_mf_sf_counts.tsv"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/figure.py"


rule fig4_facet_examples:
    input:
        metrics=f"{OUT}/metrics/all_layers.csv",
        layers=f"{OUT}/model/layers.csv",
        ica=per_layer(f"{OUT}/ica/{{layer}}.zarr"),
        patches=per_layer(f"{OUT}/patches/{{layer}}.zarr"),
    output:
        FIGURE_FILES["fig4_facet_examples"],
    params:
        stem="fig4_facet_examples",
        dpi=FIGURE_DPI,
        options={"examples_per_layer": FIGURE_EXAMPLES},
        code=script_digest("figure.py"),
    resources:
        mem_mb=job_mem_mb(FIGURE_SCRIPT_MB + 300),
    log:
        f"{OUT}/logs/fig4_facet_examples.log",
    benchmark:
        f"{OUT}/benchmarks/fig4_facet_examples.tsv"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/figure.py"


rule fig5_similarity:
    input:
        similarity_summary=f"{OUT}/similarity/summary.csv",
        layers=f"{OUT}/model/layers.csv",
    output:
        FIGURE_FILES["fig5_similarity"],
    params:
        stem="fig5_similarity",
        dpi=FIGURE_DPI,
        options={},
        code=script_digest("figure.py"),
    resources:
        mem_mb=job_mem_mb(FIGURE_SCRIPT_MB),
    log:
        f"{OUT}/logs/fig5_similarity.log",
    benchmark:
        f"{OUT}/benchmarks/fig5_similarity.tsv"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/figure.py"


rule appA_distributions:
    input:
        metrics=f"{OUT}/metrics/all_layers.csv",
        layers=f"{OUT}/model/layers.csv",
    output:
        FIGURE_FILES["appA_distributions"],
    params:
        stem="appA_distributions",
        dpi=FIGURE_DPI,
        options={},
        code=script_digest("figure.py"),
    resources:
        mem_mb=job_mem_mb(FIGURE_SCRIPT_MB),
    log:
        f"{OUT}/logs/appA_distributions.log",
    benchmark:
        f"{OUT}/benchmarks/appA_distributions.tsv"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/figure.py"


rule appB_ica_by_mf:
    input:
        metrics=f"{OUT}/metrics/all_layers.csv",
        layers=f"{OUT}/model/layers.csv",
        ica=per_layer(f"{OUT}/ica/{{layer}}.zarr"),
        patches=per_layer(f"{OUT}/patches/{{layer}}.zarr"),
    output:
        FIGURE_FILES["appB_ica_by_mf"],
    params:
        stem="appB_ica_by_mf",
        dpi=FIGURE_DPI,
        options={},
        code=script_digest("figure.py"),
    resources:
        mem_mb=job_mem_mb(FIGURE_SCRIPT_MB + 300),
    log:
        f"{OUT}/logs/appB_ica_by_mf.log",
    benchmark:
        f"{OUT}/benchmarks/appB_ica_by_mf.tsv"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/figure.py"


rule appC_heatmaps:
    input:
        similarity=per_layer(f"{OUT}/similarity/{{layer}}.zarr"),
        layers=f"{OUT}/model/layers.csv",
    output:
        FIGURE_FILES["appC_heatmaps"],
    params:
        stem="appC_heatmaps",
        dpi=FIGURE_DPI,
        options={},
        code=script_digest("figure.py"),
    resources:
        mem_mb=job_mem_mb(FIGURE_SCRIPT_MB + 300),
    log:
        f"{OUT}/logs/appC_heatmaps.log",
    benchmark:
        f"{OUT}/benchmarks/appC_heatmaps.tsv"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/figure.py"


rule figure_tables:
    # Tables 2 and 3 of the paper: the top SF and MF neurons of each layer.
    input:
        metrics=f"{OUT}/metrics/all_layers.csv",
        layers=f"{OUT}/model/layers.csv",
    output:
        sf=report(
            f"{OUT}/tables/table2_sf_neurons.csv",
            caption="../workflow/report/table2_sf_neurons.rst",
            category=CAT_VISUALIZE,
            subcategory="Tables",
        ),
        mf=report(
            f"{OUT}/tables/table3_mf_neurons.csv",
            caption="../workflow/report/table3_mf_neurons.rst",
            category=CAT_VISUALIZE,
            subcategory="Tables",
        ),
    params:
        per_layer=FIGURE_EXAMPLES,
        code=script_digest("figure_tables.py"),
    resources:
        mem_mb=job_mem_mb(FIGURE_SCRIPT_MB),
    log:
        f"{OUT}/logs/figure_tables.log",
    benchmark:
        f"{OUT}/benchmarks/figure_tables.tsv"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/figure_tables.py"


STAGE_TARGETS += [
    *expand(
        f"{OUT}/figures/{{stem}}.{{fmt}}",
        stem=[stem for stem in FIGURE_REPORT if stem != "compare_runs"],
        fmt=FIGURE_FORMATS,
    ),
    f"{OUT}/tables/table2_sf_neurons.csv",
    f"{OUT}/tables/table3_mf_neurons.csv",
]
