"""Rule neuron_figure: one neuron's picture (ICs in three modes beside its top patches)."""

from neurofacets.logs import log_to
from neurofacets.neuron_figure import draw_neuron

if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        draw_neuron(
            snakemake.input.patches,
            snakemake.input.ica,
            snakemake.input.metrics,
            int(snakemake.wildcards.neuron),
            snakemake.output[0],
            top_patches=snakemake.params.top_patches,
            dpi=snakemake.params.dpi,
            semantics_csv=next(iter(snakemake.input.semantics), None),  # none without a hierarchy
        )
