"""A static HTML gallery of every neuron: ``results/{run}/gallery/index.html``.

No server and no network: the pages work from ``file://``. Layout::

    gallery/index.html              every layer: headline numbers, distributions, links
    gallery/overview-mf.png         MF degree per layer (Fig. 2 at screen size)
    gallery/overview-facets.png     fractions of MF / SF / dead neurons per layer (Fig. 3)
    gallery/assets/gallery.css      shared style
    gallery/assets/gallery.js       sorting, filtering, heatmap highlighting (vanilla JS)
    gallery/{layer}/index.html      one card per neuron, sortable and filterable
    gallery/{layer}/similarity.html the layer's Pearson and Euclidean heatmaps + neighbours
    gallery/{layer}/overview.png    the layer's MF degree, sparsity and flatness histograms
    gallery/{layer}/pearson.png     heatmaps, one pixel per neuron pair
    gallery/{layer}/euclidean.png
    gallery/{layer}/cards/nNNNN.png one image per neuron: gray ICs / uint8 ICs / top patches

The sort/filter state of a layer page is kept in the URL fragment
(``index.html#sort=mf-desc&facet=MF,SF&min=0.2``; ``&holds=1``: only the neurons whose label
holds on held-out images, where the run has its evaluation), so views can be linked and tested;
``#n12`` is the anchor of neuron 12's card.

Modules: `images` draws the pictures, `pages` renders the HTML from the
Jinja2 templates in ``templates/``, `build` reads the stores and writes the folders;
``assets/`` holds the CSS and JS copied next to the pages.
"""

from .build import build_gallery_index, build_layer_gallery, write_assets
from .images import GAP, TILE, neuron_strip, write_card_images
from .pages import render_index_page, render_layer_page, render_similarity_page

__all__ = [
    "GAP", "TILE", "build_gallery_index", "build_layer_gallery", "neuron_strip", "render_index_page",
    "render_layer_page", "render_similarity_page", "write_assets", "write_card_images",
]
