"""neurofacets: what each convolutional neuron of an image network has learned.

The package holds all logic of the Snakemake workflow; every stage is importable and
unit-tested without Snakemake.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("neurofacets")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
