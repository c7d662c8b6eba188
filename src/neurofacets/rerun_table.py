"""Which configuration keys rerun which job: read from the rules' ``params:`` (Snakemake's rerun trigger).

Snakemake reruns a job whose params differ from those recorded when it last ran (and, through
its inputs, everything that reads its outputs). This module reads each rule's ``params:`` block
in ``rules/*.smk`` as text and names the configuration keys its expressions read, following
the module-level names the rules define (``ENCODE_TOP_K = ENCODE_ANALYSIS["top_k"]``,
``EXTRACTION_CONFIG``). `rerun_page` makes ``docs/reference/reruns.md`` of it
(``python -m neurofacets.reference_docs``); nothing is executed and Snakemake is not needed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .provenance import PERFORMANCE_SETTINGS

#: A chain of constant subscripts of ``config``: ``config["analysis"]["top_k"]``.
_CONFIG_CHAIN = re.compile(r"\bconfig((?:\[\s*[\"']\w+[\"']\s*\])+)")
_SUBSCRIPT = re.compile(r"\[\s*[\"'](\w+)[\"']\s*\]")
#: ``{k: config[k] for k in ("run", "model", "extraction")}``: the sections it names.
_SECTION_COMPREHENSION = re.compile(r"config\[(\w+)\]\s+for\s+\1\s+in\s+\(([^)]*)\)")
#: A module-level assignment of a rules file (one line).
_ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)\s*=\s*(.+)$", re.MULTILINE)
_RULE = re.compile(r"^( *)(?:rule|checkpoint) (\w+):\s*$")
#: The function that leaves the performance settings out (neurofacets.provenance).
_WITHOUT_PERFORMANCE = "without_performance_settings"


def _enclosing_call(before: str) -> str | None:
    """The name of the call whose parentheses are still open at the end of ``before``, if any."""
    depth = 0
    for i in range(len(before) - 1, -1, -1):
        char = before[i]
        if char in ")]}":
            depth += 1
        elif char in "([{":
            if depth == 0:
                name = re.search(r"(\w+)\s*$", before[:i]) if char == "(" else None
                return name.group(1) if name else None
            depth -= 1
    return None


def _dotted(section: str, chain: str) -> str:
    return ".".join([section, *_SUBSCRIPT.findall(chain)]) if section else ".".join(_SUBSCRIPT.findall(chain))


def expression_keys(text: str, names: Mapping[str, str], _seen: frozenset[str] = frozenset()) -> set[str]:
    """The configuration keys (dotted) an expression of the rules reads.

    ``names`` maps the module-level names of the rules files to their expressions; a name is
    followed into its expression, and ``NAME["key"]`` where ``NAME`` is a section of the
    config names ``section.key``. A whole section taken without its performance settings
    (`neurofacets.provenance.PERFORMANCE_SETTINGS`) is written ``section -perf``; a key
    handed to a function, ``key (through function)``.
    """
    keys: set[str] = set()
    drop_performance = _WITHOUT_PERFORMANCE in text
    for match in _CONFIG_CHAIN.finditer(text):
        # a chain handed to a function: the param is what the function makes of it
        call = _enclosing_call(text[: match.start()])
        through = f" (through {call})" if call and call not in names else ""
        keys.add(_dotted("", match.group(1)) + through)
    for match in re.finditer(r"\bconfig\b(?!\s*\[|\s*=(?!=))", text):  # the whole configuration, handed on
        call = _enclosing_call(text[: match.start()])
        keys.add("(all)" + (f" (through {call})" if call and call not in names else ""))
    for match in _SECTION_COMPREHENSION.finditer(text):
        keys.update(re.findall(r"[\"'](\w+)[\"']", match.group(2)))
    for name, expr in names.items():
        if name in _seen:
            continue
        for match in re.finditer(rf"\b{name}\b((?:\[\s*[\"']\w+[\"']\s*\])*)", text):
            inner = expression_keys(expr, names, _seen | {name})
            first = _SUBSCRIPT.findall(match.group(1))[:1]
            picked = {key for key in inner if first and key.split()[0] == first[0]}
            if match.group(1) and len(inner) == 1:
                keys.add(_dotted(next(iter(inner)), match.group(1)))
            elif picked:  # one section of a dict of sections (EXTRACTION_CONFIG["extraction"])
                keys.update(picked)
                drop_performance = drop_performance or _WITHOUT_PERFORMANCE in expr
            else:
                keys.update(inner)
                drop_performance = drop_performance or _WITHOUT_PERFORMANCE in expr
    if drop_performance:
        sections = {section for section, _ in PERFORMANCE_SETTINGS}
        keys = {f"{key} -perf" if key in sections else key for key in keys}
    return keys


def module_names(texts: Iterable[str]) -> dict[str, str]:
    """The module-level one-line assignments ``NAME = expression`` of the rules files."""
    names: dict[str, str] = {}
    for text in texts:
        for match in _ASSIGNMENT.finditer(text):
            names.setdefault(match.group(1), match.group(2))
    return names


def params_blocks(text: str) -> dict[str, str]:
    """Rule name -> the text of its ``params:`` block, for the named rules of one rules file
    (also those defined inside an ``if``)."""
    blocks: dict[str, str] = {}
    rule, indent, in_params, lines = None, 0, False, []
    for line in text.splitlines():
        if not line.strip() or line.strip().startswith("#"):
            continue
        depth = len(line) - len(line.lstrip(" "))
        found = _RULE.match(line)
        if found or (rule is not None and depth <= indent):
            if rule and lines:
                blocks[rule] = "\n".join(lines)
            rule, in_params, lines = None, False, []
            if found:
                rule, indent = found.group(2), len(found.group(1))
            continue
        if rule is None:
            continue
        if depth == indent + 4 and re.match(r"\w+:", line.strip()):
            in_params = line.strip() == "params:"
        elif in_params:
            lines.append(line)
    if rule and lines:
        blocks[rule] = "\n".join(lines)
    return blocks


def rule_keys(rules_dir: Path) -> dict[str, list[str]]:
    """Rule name -> the sorted configuration keys its params read (rules without any left out)."""
    texts = {path.name: path.read_text(encoding="utf-8") for path in sorted(Path(rules_dir).glob("*.smk"))}
    names = module_names(texts.values())
    found: dict[str, list[str]] = {}
    for text in texts.values():
        for rule, block in params_blocks(text).items():
            keys = expression_keys(block, names)
            if keys:
                found[rule] = sorted(keys)
    return found


def figure_keys(figures: Sequence[object]) -> dict[str, list[str]]:
    """The figure jobs (rules/figure_rule.smk, one per entry of the figure table): each one's
    params are ``figures.dpi`` and the figure's own ``figures`` options."""
    return {figure.stem: sorted({"figures.dpi", *(f"figures.{key}" for key in figure.options)})
            for figure in figures}


def _cell(key: str) -> str:
    """A key as the page shows it: ``extraction -perf`` is ```extraction` (all but `workers`)``."""
    name, _, rest = key.partition(" ")
    rest = re.sub(r"\(through (\w+)\)", r"(through `\1`)", rest)
    if name == "(all)":
        return "the whole configuration" + (f" {rest}" if rest else "")
    if rest == "-perf":
        left_out = ", ".join(f"`{k}`" for section, k in PERFORMANCE_SETTINGS if section == name)
        return f"`{name}` (all but {left_out})"
    return f"`{name}`" + (f" {rest}" if rest else "")


def rerun_page(keys: Mapping[str, Sequence[str]], figures: Mapping[str, Sequence[str]], header: str) -> str:
    """``docs/reference/reruns.md``: for each rule, the keys whose change reruns its jobs."""
    perf = ", ".join(f"`{section}.{key}`" for section, key in PERFORMANCE_SETTINGS)
    lines = [
        header,
        "# Which settings rerun what",
        "",
        "Snakemake reruns a job when a value in its `params:` differs from the one recorded when "
        "it last ran, and then every job that reads what it rewrote. The table lists, for each rule, "
        "the configuration keys its params read (from `rules/*.smk`); a section name stands for "
        "every key in it.",
        "",
        f"Performance settings ({perf}) are no param of any job and no part of the stores' "
        "`config_digest`: changing them reruns nothing (a test plans the tiny run after changing "
        "them). `extraction.batch_size` is not one of them: on a CPU the same images in batches of "
        "1 and of 12 give maps that differ in the last bit, so it reruns the shards. Settings read "
        "only by `threads:` or `resources:` (such as `visualize.threads`) rerun nothing. Every rule "
        "also reruns when its script or a package module it imports changes (its `code` param).",
        "",
        "| rule | configuration keys in its params |",
        "|---|---|",
    ]
    lines += [f"| `{rule}` | {', '.join(_cell(k) for k in keys[rule])} |" for rule in sorted(keys)]
    lines += [
        "",
        "## Figure jobs",
        "",
        "One job per figure (`rules/figure_rule.smk`), each also writing every format of `figures.format`.",
        "",
        "| figure job | configuration keys in its params |",
        "|---|---|",
    ]
    lines += [f"| `{stem}` | {', '.join(_cell(k) for k in figures[stem])} |" for stem in sorted(figures)]
    return "\n".join(lines) + "\n"
