"""Rule gallery_layer: one layer's gallery pages (neurofacets.gallery.build_layer_gallery)."""

from neurofacets.gallery import build_layer_gallery
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    build_layer_gallery(
        layer=snakemake.wildcards.layer,  # noqa: F821
        metrics_csv=snakemake.input.metrics,  # noqa: F821
        layers_csv=snakemake.input.layers,  # noqa: F821
        ica_store=snakemake.input.ica,  # noqa: F821
        patch_store=snakemake.input.patches,  # noqa: F821
        similarity_store=snakemake.input.similarity,  # noqa: F821
        evaluation_csv=snakemake.input.evaluation,  # noqa: F821
        output_dir=snakemake.output[0],  # noqa: F821
        run=snakemake.params.run,  # noqa: F821
        n_patches=int(snakemake.params.n_patches),  # noqa: F821
        semantics_csv=next(iter(snakemake.input.semantics), None),  # noqa: F821 (none without a hierarchy)
        hierarchy_csv=next(iter(snakemake.input.hierarchy), None),  # noqa: F821
    )
