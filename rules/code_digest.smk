# Rerun triggers: Snakemake reruns a `script:` rule when its script changes, not when the
# package code the script calls changes. A rule's `params: code=script_digest("<script>.py")`
# follows every package module (and declared package data) that the script imports,
# transitively, found from the import statements (neurofacets.provenance).
from functools import cache
from pathlib import Path

from neurofacets.provenance import script_code_digest


@cache  # once per script and parse: many rules run the same script (every figure runs figure.py)
def script_digest(script):
    """Digest of the package code that workflow/scripts/<script> runs."""
    return script_code_digest(Path(workflow.basedir) / "workflow" / "scripts" / script)
