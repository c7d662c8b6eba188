"""``python -m neurofacets.ica summary results/<run>``: see `neurofacets.ica.summary`."""

import sys

from .summary import main

sys.exit(main())
