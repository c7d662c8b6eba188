"""Rule gallery_layer: one layer's gallery pages (neurofacets.gallery.build_layer_gallery)."""

from neurofacets.gallery import build_layer_gallery
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    build_layer_gallery(
        layer=snakemake.wildcards.layer,
        metrics_csv=snakemake.input.metrics,
        layers_csv=snakemake.input.layers,
        ica_store=snakemake.input.ica,
        patch_store=snakemake.input.patches,
        similarity_store=snakemake.input.similarity,
        evaluation_csv=snakemake.input.evaluation,
        output_dir=snakemake.output[0],
        run=snakemake.params.run,
        n_patches=int(snakemake.params.n_patches),
        semantics_csv=next(iter(snakemake.input.semantics), None),  # none without a hierarchy
        hierarchy_csv=next(iter(snakemake.input.hierarchy), None),
    )
