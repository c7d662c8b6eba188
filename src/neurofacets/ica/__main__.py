"""``python -m neurofacets.ica summary results/<run>``: see :mod:`neurofacets.ica.summary`."""

import sys

from .summary import main

sys.exit(main())
