"""Independent components of each neuron's receptive-field patches (docs/methods.md).

The package is split along its seams:

- `solvers`: whitening and the ICA solvers (Picard-O by default,
  python-picard, scikit-learn FastICA) with their common convergence yardstick;
- `fit`: one neuron's four fits (gray, red, green, blue), their
  status, order and sign, and the pictures their unmixing matrices define;
- `pool`: worker processes with ordered, reproducible results;
- `store`: the ``ica/{layer}.zarr`` store, written from a patch
  store and read back as pictures;
- `summary`: fit counts per status (``python -m neurofacets.ica
  summary results/<run>``).
"""

from .fit import (
    FITS,
    LUMA_WEIGHTS,
    QUANTISATION_VARIANCE,
    RANK_RTOL,
    STATUS,
    STATUS_CODE,
    FitResult,
    FitSettings,
    NeuronFits,
    area_matrix,
    components_from_unmixing,
    fit_signals,
    fit_sources,
    neuron_components,
    neuron_fits,
    to_uint8,
)
from .solvers import DEFAULT_SOLVER, SOLVERS
from .store import IcaReader, build_ica, read_neuron_ica, status_text, write_ica_store
from .summary import status_counts

__all__ = [
    "DEFAULT_SOLVER", "FITS", "LUMA_WEIGHTS", "QUANTISATION_VARIANCE", "RANK_RTOL", "SOLVERS", "STATUS",
    "STATUS_CODE", "FitResult", "FitSettings", "IcaReader", "NeuronFits", "area_matrix", "build_ica",
    "components_from_unmixing", "fit_signals", "fit_sources", "neuron_components", "neuron_fits",
    "read_neuron_ica", "status_counts", "status_text", "to_uint8", "write_ica_store",
]
