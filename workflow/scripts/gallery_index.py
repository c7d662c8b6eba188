"""Rule gallery_index: the gallery's index page and assets (neurofacets.gallery.build_gallery_index)."""

from neurofacets.gallery import build_gallery_index
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):
    build_gallery_index(
        metrics_csv=snakemake.input.metrics,
        layers_csv=snakemake.input.layers,
        similarity_summary_csv=snakemake.input.similarity_summary,
        index_html=snakemake.output.index,
        assets_dir=snakemake.output.assets,
        run=snakemake.params.run,
        layer_dirs=list(snakemake.input.layer_pages),
    )
