# Several runs in one call: config `runs` lists runs that share the rest of the config
# (the dataset above all) and differ in what each entry says (e.g. model.weights). The
# Snakefile is instantiated once per run as a Snakemake module with that run's config;
# its rules are renamed `<run>__<rule>` (`snakemake --configfile config/controls.yaml
# vgg16_random__all` builds one run completely). Each run is extracted once, in its own
# results/<run>/. The figures and table comparing the runs go to results/<top-level run>/.


include: "runs_common.smk"
# before the modules: a file a module included already is not included again at the top level
include: "figure_rule.smk"


if len({rule_prefix(run) for run in RUNS}) != len(RUNS):
    raise ValueError(f"runs: the names {list(RUNS)} give the same rule prefix; make them differ in letters or digits")

for RUN_NAME, RUN_CONFIG in RUNS.items():
    RUN_MODULE = f"run_{rule_prefix(RUN_NAME)}"
    RUN_PREFIX = rule_prefix(RUN_NAME)

    module:
        name: RUN_MODULE
        snakefile:
            "../Snakefile"
        config:
            RUN_CONFIG

    use rule * from RUN_MODULE as RUN_PREFIX*


# Runs with the same model share its weights file: the first run's rule makes it.
WEIGHTS_RULES = {}
for RUN_NAME in RUNS:
    WEIGHTS_RULES.setdefault(run_output(RUN_NAME, "weights"), []).append(rule_prefix(RUN_NAME) + "weights")
for RULE_NAMES in WEIGHTS_RULES.values():
    if len(RULE_NAMES) > 1:
        workflow.ruleorder(*RULE_NAMES)  # what `ruleorder: a > b` compiles to, for names known only here


checkpoint runs_semantics:
    # which runs have a class hierarchy (their semantics stage was not skipped)
    input:
        [run_output(run, "semantics_hierarchy") for run in RUNS],
    output:
        f"{COMPARE}/semantics/runs.csv",
    params:
        runs=list(RUNS),
        code=script_digest("runs_semantics.py"),
    log:
        f"{COMPARE}/logs/runs_semantics.log",
    benchmark:
        f"{COMPARE}/benchmarks/runs_semantics.tsv"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/runs_semantics.py"


# The figures comparing the runs (the entries of the table of figures with an input per run);
# the one beside the untrained controls only when a run has one.
for FIGURE in COMPARISON_FIGURES:
    if CONTROLS or not FIGURE.needs_control:
        figure_rule(FIGURE, COMPARE, comparison_inputs(FIGURE), config["figures"])

figure_format_refusal("compare_figure_format", COMPARE, [FIGURE.stem for FIGURE in COMPARISON_FIGURES], COMPARE_FORMATS)


rule compare_semantics_table:
    # the runs' semantics/summary.csv stacked: the headline table of the comparison
    input:
        runs=f"{COMPARE}/semantics/runs.csv",
        summaries=semantics_summaries,
    output:
        f"{COMPARE}/tables/compare_semantics.csv",
    params:
        code=script_digest("compare_semantics_table.py"),
    resources:
        mem_mb=1000,
    log:
        f"{COMPARE}/logs/compare_semantics_table.log",
    benchmark:
        f"{COMPARE}/benchmarks/compare_semantics_table.tsv"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/compare_semantics_table.py"


# the table is shown in the report beside the figure drawn from the same summaries
COMPARE_EVALUATION = FIGURES_BY_STEM["compare_evaluation"]


rule compare_evaluation_table:
    # the runs' evaluation/summary.csv stacked: how far each run's labels can be trusted, side by side
    input:
        summaries=[run_output(run, "evaluation_summary", "summary") for run in RUNS],
    output:
        report(
            f"{COMPARE}/tables/compare_evaluation.csv",
            caption="../workflow/report/compare_evaluation_table.rst",
            category=COMPARE_EVALUATION.category,
            subcategory=COMPARE_EVALUATION.subcategory,
        ),
    params:
        code=script_digest("compare_evaluation_table.py"),
    resources:
        mem_mb=job_mem_mb(FIGURE_SCRIPT_MB),
    log:
        f"{COMPARE}/logs/compare_evaluation_table.log",
    benchmark:
        f"{COMPARE}/benchmarks/compare_evaluation_table.tsv"
    group:
        "figures"
    conda:
        "../envs/neurofacets.yaml"
    script:
        "../workflow/scripts/compare_evaluation_table.py"


if CONTROLS:
    BESIDE_CONTROL = FIGURES_BY_STEM["beside_control"]

    rule beside_control_table:
        # each run's headline numbers beside its untrained control's, the difference and its interval
        input:
            summaries=[run_output(run, "summary") for run in controlled_runs()],
            evaluation_summaries=[run_output(run, "evaluation_summary", "summary") for run in controlled_runs()],
            draws=bootstrap_draws(controlled_runs()),
        output:
            report(
                f"{COMPARE}/tables/beside_control.csv",
                caption="../workflow/report/beside_control_table.rst",
                category=BESIDE_CONTROL.category,
                subcategory=BESIDE_CONTROL.subcategory,
            ),
        params:
            pairs=CONTROLS,
            code=script_digest("beside_control.py"),
        resources:
            mem_mb=job_mem_mb(FIGURE_SCRIPT_MB),
        log:
            f"{COMPARE}/logs/beside_control_table.log",
        benchmark:
            f"{COMPARE}/benchmarks/beside_control_table.tsv"
        group:
            "figures"
        conda:
            "../envs/neurofacets.yaml"
        script:
            "../workflow/scripts/beside_control.py"
