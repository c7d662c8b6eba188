"""Rule neuron_figure: one neuron's picture (ICs in three modes beside its top patches)."""

from neurofacets.logs import log_to
from neurofacets.neuron_figure import draw_neuron

if __name__ == "__main__":
    with log_to(snakemake.log[0]):  # noqa: F821 (snakemake is injected by Snakemake)
        draw_neuron(
            snakemake.input.patches,  # noqa: F821
            snakemake.input.ica,  # noqa: F821
            snakemake.input.metrics,  # noqa: F821
            int(snakemake.wildcards.neuron),  # noqa: F821
            snakemake.output[0],  # noqa: F821
            top_patches=snakemake.params.top_patches,  # noqa: F821
            dpi=snakemake.params.dpi,  # noqa: F821
            semantics_csv=next(iter(snakemake.input.semantics), None),  # noqa: F821 (none without a hierarchy)
        )
