"""The documentation site (MkDocs + Material, ``mkdocs.yml``) and the README that leads into it.

The README is checked as text: every relative link leads to a file, every anchor into a
Markdown page to one of its headings, and the quick start keeps its two commands. The site is
built once per module with ``mkdocs build --strict`` (a broken link or anchor, or a page left
out of the nav, fails the build); three built pages are then opened over ``file://`` in
Debian's headless ``chromium``, as ``tests/test_gallery.py`` does for the gallery, and
screenshots are saved under ``test-artifacts/``. Each part is skipped, with the reason, where
mkdocs (``pip install -e ".[docs]"``) or chromium is missing.
"""

from __future__ import annotations

import html.parser
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
ARTIFACTS = REPO / "test-artifacts"
QUICK_START = (
    "pip install -e . && snakemake --cores 2",
    'pip install -e ".[test]" && python -m pytest',
)
#: The built pages opened in the browser: the two generated references (tables) and the user
#: guide's figures page (figure pictures).
BROWSED = {"reference-configuration": "reference/configuration", "reference-outputs": "reference/outputs",
           "figures": "figures"}

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")


def _missing_docs_packages() -> list[str]:
    """The documentation packages (the ``docs`` extra) that cannot be imported here."""
    missing = []
    for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # the parent package of a dotted name is absent
            found = False
        if not found:
            missing.append(name)
    return missing


MKDOCS_MISSING = _missing_docs_packages()


# --- the README ---------------------------------------------------------------------------

def slugify(heading: str) -> str:
    """The anchor MkDocs (Python-Markdown's ``toc``) gives a heading.

    Inline code marks, emphasis and link targets are dropped first, as ``toc`` slugs the
    rendered text; then its ``slugify``: NFKD to ASCII, everything but word characters, spaces
    and hyphens removed, lower case, runs of spaces and hyphens made one hyphen.

    Parameters
    ----------
    heading : str
        The heading's Markdown text, without the leading ``#`` marks.

    Returns
    -------
    str
        The anchor, without ``#``.
    """
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # [text](target) -> text
    text = text.replace("`", "").replace("*", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(markdown: Path) -> set[str]:
    """Every heading anchor of a Markdown page (outside code fences; repeats get ``_1``, ...)."""
    found: set[str] = set()
    fence = False
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        match = None if fence else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug, n = slugify(match.group(1)), 1
            while slug in found:  # toc's unique(): a repeated heading gets _1, _2, ...
                slug = f"{slugify(match.group(1))}_{n}"
                n += 1
            found.add(slug)
    return found


def readme_links() -> list[tuple[int, str]]:
    """(line number, target) of every relative link and image of the README, code aside."""
    links, fence = [], False
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        line = re.sub(r"`[^`]*`", "", line)  # inline code is not a link
        for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", line):
            if not urlsplit(target).scheme:
                links.append((number, target))
    return links


def test_readme_is_short_and_keeps_the_quick_start():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 220
    for command in QUICK_START:
        assert command in text, f"the README's quick start lost `{command}`"


def test_every_relative_readme_link_resolves():
    links = readme_links()
    assert len(links) > 20, "the README links into the documentation"
    broken = []
    for number, target in links:
        path, _, anchor = target.partition("#")
        file = (REPO / unquote(path)) if path else README
        if not file.exists():
            broken.append(f"line {number}: {target}: no file {file.relative_to(REPO)}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"line {number}: {target}: {file.relative_to(REPO)} has no heading #{anchor}")
    assert broken == []


def test_slugify_matches_mkdocs_on_this_repository_headings():
    """The slug rule above, checked on headings with code, punctuation and links."""
    assert slugify("Build one figure alone") == "build-one-figure-alone"
    assert slugify("Which weights: `model.weights`") == "which-weights-modelweights"
    assert slugify("3. Definitions (the paper's, made exact)") == "3-definitions-the-papers-made-exact"
    assert slugify("What it produces (under `results/{run}/`)") == "what-it-produces-under-resultsrun"


# --- the built site -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built from this checkout with ``mkdocs build --strict``."""
    if MKDOCS_MISSING:
        pytest.skip(f"needs {', '.join(MKDOCS_MISSING)}: pip install -e \".[docs]\"")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # Material's notice is not a warning of ours
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-4000:]}"
    return out


def built_page(site: Path, target: str) -> Path:
    """The HTML file MkDocs writes for a README link ``docs/<page>.md`` (directory URLs)."""
    page = Path(target).relative_to("docs").with_suffix("")
    return site / ("index.html" if page.name == "index" and page.parent == Path(".") else page / "index.html")


def test_readme_anchors_exist_in_the_built_pages(site):
    """The README's anchors into docs/ name an id of the built page (not only our slug rule)."""
    missing = []
    for number, target in readme_links():
        path, _, anchor = target.partition("#")
        if anchor and path.startswith("docs/") and path.endswith(".md"):
            html = built_page(site, path).read_text(encoding="utf-8")
            if f'id="{anchor}"' not in html:
                missing.append(f"line {number}: {target}")
    assert missing == []


def test_every_nav_page_is_built(site):
    for name in ("index.html", "dataset/index.html", "methods/index.html", "troubleshooting/index.html",
                 "benchmarks/index.html", "changelog/index.html", "reference/api/index.html"):
        assert (site / name).is_file(), name


#: A Sphinx role as it shows when MkDocs renders it as text (mkdocstrings knows none).
SPHINX_ROLE = re.compile(r":(?:py:)?(?:data|class|func|meth|mod|attr|obj|exc|ref|const):`?")


def test_api_page_renders_docstrings_without_sphinx_roles(site):
    """Docstrings cross-link with mkdocstrings' ``[`name`][]``, not ``:func:`name```, and every
    module has one heading (mkdocstrings' own), not a page heading above it as well."""
    from neurofacets import reference_docs

    page = (site / "reference/api/index.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", "", page)
    assert SPHINX_ROLE.findall(text) == []
    headings = re.findall(r"<h[1-6][^>]*>(.*?)</h[1-6]>", page, re.S)
    titles = [re.sub(r"<[^>]+>|¶|&para;", "", heading).strip() for heading in headings]
    for module, _ in reference_docs.API_MODULES:
        assert titles.count(module) == 1, (module, [t for t in titles if module in t][:5])
    assert 'href="#neurofacets.readers.read_metrics"' in page  # a cross-reference resolved to its entry


def test_sphinx_role_pattern_finds_a_role():
    assert SPHINX_ROLE.findall("see :func:`neurofacets.readers.read_metrics` and :data:`X`") == [":func:`", ":data:`"]


class PageParser(html.parser.HTMLParser):
    """The parts of a built page the browser test checks: nav, table rows, images."""

    def __init__(self):
        super().__init__()
        self.classes: set[str] = set()
        self.images: list[str] = []
        self.table_rows: list[int] = []  # data cells per row of every table body
        self._in_table = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.classes.update((attrs.get("class") or "").split())
        if tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])
        elif tag == "table":
            self._in_table += 1
        elif tag == "tr" and self._in_table:
            self.table_rows.append(0)
        elif tag == "td" and self._in_table and self.table_rows:
            self.table_rows[-1] += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table -= 1


def browse(url: str, profile: Path, *extra: str) -> str:
    """Open ``url`` in headless chromium and return its stdout (the DOM with ``--dump-dom``)."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}", *extra, url,
    ]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def is_blank(png: Path) -> bool:
    """True if the picture is essentially one colour (a failed render)."""
    with Image.open(png) as image:
        rgb = image.convert("RGB").resize((320, 400))
    colours = rgb.getcolors(maxcolors=320 * 400)
    dominant = max(count for count, _ in colours)
    return len(colours) < 2 or dominant > 0.995 * 320 * 400


@needs_chromium
@pytest.mark.parametrize("name", sorted(BROWSED))
def test_built_page_in_a_browser(site, tmp_path, name):
    page = site / BROWSED[name] / "index.html"
    assert page.is_file(), f"{BROWSED[name]} was not built"
    dom = browse(page.as_uri(), tmp_path / "dom", "--dump-dom")
    parsed = PageParser()
    parsed.feed(dom)
    assert {"md-nav", "md-header", "md-content"} <= parsed.classes, "not a Material page"
    assert any(cells for cells in parsed.table_rows), "no table with data rows"
    for src in parsed.images:  # every picture the page shows is a file of the site
        if urlsplit(src).scheme in ("http", "https", "data"):
            continue
        target = (page.parent / unquote(urlsplit(src).path)).resolve()
        assert target.is_file(), f"{BROWSED[name]}: <img src={src!r}> resolves to no file"
    if name == "figures":
        assert sum(src.endswith(".png") for src in parsed.images) >= 5, "the figures page shows its figures"

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"docs-{name}.png"
    shot.unlink(missing_ok=True)
    browse(page.as_uri(), tmp_path / "shot", f"--screenshot={shot}", "--window-size=1280,1600")
    with Image.open(shot) as image:
        assert image.size[0] >= 1000 and image.size[1] >= 1000, image.size
    assert not is_blank(shot), f"{shot} is blank"
