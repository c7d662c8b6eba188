# The one template every figure's job is made from, for an entry of the table of figures
# (neurofacets.figure_table): rules/figures.smk makes a run's figures with it,
# rules/report.smk the figure comparing this run with config compare_runs, rules/runs.smk
# the figures comparing the runs of a multi-run config. Uses script_digest (code_digest.smk,
# included by common.smk and runs_common.smk before this file).
import re

from neurofacets.figure_table import report_format
from neurofacets.job_resources import FIGURE_SCRIPT_MB, job_mem_mb


def figure_rule(figure, out, inputs, figures_config):
    """Define the job drawing `figure` into `out`/figures from `inputs` (name -> path,
    list or input function), in every format of `figures_config` (the config's figures
    section); the report shows its report format with workflow/report/<stem>.rst.
    The job is named after the figure's stem; on a cluster it joins the `figures` group job,
    except a figure that needs the class hierarchy: that job exists only once the semantics
    checkpoint has run, and Snakemake 9 forms group jobs from the jobs it knew before (a
    grouped one stopped a SLURM run with `KeyError: <run>__semantic_facets`), so it is a
    cluster job of its own."""
    group = None if figure.needs_hierarchy else "figures"
    formats = figures_config["format"]
    shown = f".{report_format(formats)}"
    report_place = {
        "caption": f"../{figure.caption}",
        "category": figure.category,
        "subcategory": figure.subcategory,
    }
    # (`report(` must not start a line: the parser would read it as the `report:` directive)
    outputs = [
        path if not path.endswith(shown) else report(path, **report_place) for path in figure.outputs(out, formats)
    ]

    rule:
        name:
            figure.stem
        input:
            **inputs,
        output:
            outputs,
        params:
            stem=figure.stem,
            dpi=figures_config["dpi"],
            options={key: figures_config[key] for key in figure.options},
            code=script_digest("figure.py"),
        resources:
            mem_mb=job_mem_mb(FIGURE_SCRIPT_MB + figure.extra_mb),
        log:
            f"{out}/logs/{figure.stem}.log",
        benchmark:
            f"{out}/benchmarks/{figure.stem}.tsv"
        group:
            group
        conda:
            "../envs/neurofacets.yaml"
        script:
            "../workflow/scripts/figure.py"


def figure_format_refusal(name, out, stems, formats):
    """A rule matching `out`/figures/<stem>.<ext> for a figure in a format outside
    figures.format: planning it stops the call naming the format and what to change (without
    it, Snakemake says only "No rule to produce"). It never runs."""

    def refuse(wildcards):
        raise ValueError(
            f"figures.format: {out}/figures/{wildcards.stem}.{wildcards.ext} was asked for, but "
            f"{wildcards.ext!r} is not in figures.format {list(formats)}: add it to figures.format "
            f"(e.g. format: {[*formats, wildcards.ext]}) or ask for {wildcards.stem}.{formats[0]}"
        )

    rule:
        name:
            name
        input:
            refuse,
        output:
            f"{out}/figures/{{stem}}.{{ext}}",
        wildcard_constraints:
            stem="|".join(re.escape(stem) for stem in stems),
            ext=r"(?!(?:" + "|".join(re.escape(f) for f in formats) + r")$)[A-Za-z0-9]+",
        log:
            f"{out}/logs/{name}/{{stem}}.{{ext}}.log",
        benchmark:
            f"{out}/benchmarks/{name}/{{stem}}.{{ext}}.tsv"
        conda:
            "../envs/neurofacets.yaml"
        shell:
            "exit 1"
