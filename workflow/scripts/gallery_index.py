"""Rule gallery_index: the gallery's index page and assets (neurofacets.gallery.build_gallery_index)."""

from neurofacets.gallery import build_gallery_index
from neurofacets.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    build_gallery_index(
        metrics_csv=snakemake.input.metrics,  # noqa: F821
        layers_csv=snakemake.input.layers,  # noqa: F821
        similarity_summary_csv=snakemake.input.similarity_summary,  # noqa: F821
        index_html=snakemake.output.index,  # noqa: F821
        assets_dir=snakemake.output.assets,  # noqa: F821
        run=snakemake.params.run,  # noqa: F821
        layer_dirs=list(snakemake.input.layer_pages),  # noqa: F821
    )
