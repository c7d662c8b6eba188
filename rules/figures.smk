# Stage 5: every figure of the paper (docs/reference/figures.md) and Tables 2-3.
# One job per figure, each reading only the tables and stores its figure shows, so
# `snakemake results/<run>/figures/<stem>.pdf` on a run whose inputs exist runs one job.
# The figures, their inputs, memory and report places are the table of figures
# (neurofacets.figure_table); each job is made from the template in figure_rule.smk, named
# after the figure's stem, and writes every configured format (figures.format); the report
# embeds one of them (PNG where built) with the caption in workflow/report/<stem>.rst.
from neurofacets.figure_table import CAT_VISUALIZE, RUN_FIGURES


include: "figure_rule.smk"


FIGURE_FORMATS = config["figures"]["format"]

for FIGURE in RUN_FIGURES:
    figure_rule(FIGURE, OUT, FIGURE.input_paths(OUT, layers=LAYERS), config["figures"])

# a figure asked for in a format outside figures.format: refused naming it
figure_format_refusal("figure_format", OUT, [*(FIGURE.stem for FIGURE in RUN_FIGURES), "compare_runs"], FIGURE_FORMATS)


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
        per_layer=config["figures"]["examples_per_layer"],
        code=script_digest("figure_tables.py"),
    resources:
        mem_mb=job_mem_mb(FIGURE_SCRIPT_MB),
    log:
        f"{OUT}/logs/figure_tables.log",
    benchmark:
        f"{OUT}/benchmarks/figure_tables.tsv"
    group:
        "figures"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/figure_tables.py"


# The figures of a run with a class hierarchy are the semantics stage's targets (semantics_targets).
STAGE_TARGETS += [
    *(path for FIGURE in RUN_FIGURES if not FIGURE.needs_hierarchy for path in FIGURE.outputs(OUT, FIGURE_FORMATS)),
    f"{OUT}/tables/table2_sf_neurons.csv",
    f"{OUT}/tables/table3_mf_neurons.csv",
]
