"""Small copies of a run's figure PNGs for the README (``docs/figures/``).

The figure rules write PNGs at ``figures.dpi`` (150 by default: 1000-1100 px wide, up to
1.5 MB for the image-heavy figures). The README shows reduced copies that are cheap to
commit::

    python -m neurofacets.figures.docs results/demo/figures docs/figures
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from ..pathlike import PathLike
from ..store import atomic_output

logger = logging.getLogger(__name__)

MAX_WIDTH = 900  # px: the width GitHub shows a README image at


def export_docs_figures(
    figures_dir: PathLike,
    out_dir: PathLike,
    max_width: int = MAX_WIDTH,
    stems: Sequence[str] | None = None,
    colours: int | None = 256,
) -> list[Path]:
    """Copy ``<stem>.png`` of ``figures_dir`` to ``out_dir``, reduced to ``max_width`` px.

    Images already narrower are copied unchanged in size; the aspect ratio is kept. With
    ``colours`` the image is reduced to an adaptive palette of that many colours (the IC
    and heatmap figures shrink 3-4x; ``None`` keeps full RGB) and saved with maximum
    compression. Returns the written paths.
    """
    if max_width < 16:
        raise ValueError(f"max_width must be at least 16 px, got {max_width}")
    figures_dir, out_dir = Path(figures_dir), Path(out_dir)
    sources = sorted(figures_dir.glob("*.png")) if stems is None else [figures_dir / f"{s}.png" for s in stems]
    missing = [str(p) for p in sources if not p.exists()]
    if missing or not sources:
        raise FileNotFoundError(f"no figure PNGs to export: {missing or figures_dir}")
    written = []
    for source in sources:
        with Image.open(source) as img:
            img = img.convert("RGB")
            if img.width > max_width:
                img = img.resize((max_width, round(img.height * max_width / img.width)), Image.Resampling.LANCZOS)
            if colours is not None:
                img = img.quantize(colours, dither=Image.Dither.NONE)
            with atomic_output(out_dir / source.name) as tmp:
                img.save(tmp, format="PNG", optimize=True)
        written.append(out_dir / source.name)
        logger.info("%s -> %s", source, out_dir / source.name)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Reduced copies of a run's figure PNGs for the README.")
    parser.add_argument("figures_dir", help="results/<run>/figures")
    parser.add_argument("out_dir", help="e.g. docs/figures")
    parser.add_argument("--max-width", type=int, default=MAX_WIDTH)
    parser.add_argument("--colours", type=int, default=256, help="palette size; 0 keeps full RGB")
    args = parser.parse_args(argv)
    for path in export_docs_figures(args.figures_dir, args.out_dir, args.max_width, colours=args.colours or None):
        print(path)


if __name__ == "__main__":
    main()
