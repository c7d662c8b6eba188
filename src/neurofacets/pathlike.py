"""The one type alias for a filesystem path argument: a string or any ``os.PathLike``."""

from __future__ import annotations

import os

PathLike = str | os.PathLike[str]

__all__ = ["PathLike"]
