"""Sphinx extension: the parts of the backcare docs that are generated.

At ``builder-inited`` it writes reStructuredText fragments into
``docs/_generated/`` (gitignored) from the objects the library itself uses:

- ``profile-fields.rst``  from ``backcare._profile.core_fields()``
- ``rule-schema.rst``     from ``backcare._loader.SCHEMA`` and the nested key tables
- ``catalogue-*.rst``     from the default rulebase: techniques, every rule,
  red flags, contraindications, urgency actions, and ``chain.dot``, the
  diagram of how profile fields and derived facts chain into techniques
- ``seed-claims.rst``     the rules that encode the seed document, with their grade
- ``sources.rst`` and ``evidence-levels.rst``
- ``cli.rst``             from ``backcare._cli._parser()``

Pages include these fragments, so nothing about the rules is copied by hand.
A fragment is rewritten only when its text changes, so incremental builds
stay incremental.

It also adds the ``backcare-command`` directive, which runs a ``backcare``
command line at build time and shows its real output.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.docutils import SphinxDirective

import backcare
from backcare import _cli, _loader, _model, _profile

GENERATED = "_generated"
#: The catalogue's pages of rules, one per rule file, are written here (gitignored).
CATALOGUE = "catalogue"

#: Fill colours of rule boxes in the diagram, by evidence level; the legend
#: below the diagram uses the same colours (see _static/backcare.css).
EVIDENCE_COLOURS = {"guideline": "#cfe9d2", "trial": "#d3e3f6", "low": "#fbe6c2", "claim": "#f6d2d2",
                    "refuted": "#e4e4e4"}
FIELD_COLOUR = "#e4e4f4"
FACT_COLOUR = "#fff7d6"
TECHNIQUE_COLOUR = "#c9ecd0"
SAFETY_COLOUR = "#c0392b"


# ---------------------------------------------------------------------------
# reStructuredText helpers


def esc(text: str) -> str:
    """Escape free text for inline reStructuredText (whitespace runs become one space)."""
    text = re.sub(r"\s+", " ", str(text))
    text = text.replace("\\", "\\\\")
    for ch in "*`|_[]":
        text = text.replace(ch, "\\" + ch)
    if re.match(r"^([-+*#]|\d+\.)\s", text):
        text = "\\" + text
    return text


def lit(text: object) -> str:
    """An inline literal."""
    text = " ".join(str(text).split())
    if "`" in text:
        return esc(text)
    return f"``{text}``"


def indent(lines: Iterable[str], by: int = 3) -> list[str]:
    pad = " " * by
    return [pad + line if line else "" for line in lines]


def list_table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str, widths: str = "auto") -> list[str]:
    """A list-table whose rows stack into cards on a narrow screen (``backcare-stack``).

    Every cell after the first starts with its column's name, hidden on a
    wide screen and shown above the value when the row is stacked.
    """
    out = [".. list-table::", "   :header-rows: 1", f"   :class: {cls} backcare-stack", f"   :widths: {widths}", ""]
    for n, row in enumerate([header, *rows]):
        for i, cell in enumerate(row):
            if n and i and cell:
                cell = f":backcare-label:`{esc(header[i])}` {cell}"
            out.append(("   * - " if i == 0 else "     - ") + (cell or ""))
    return out + [""]


def heading(text: str, char: str) -> list[str]:
    return [text, char * max(len(text), 4), ""]


def make_id(text: str) -> str:
    return nodes.make_id(text)


def rule_label(rule_id: str) -> str:
    return f"rule-{rule_id}"


def source_ref(source_id: str) -> str:
    return f":ref:`{source_id} <source-{source_id}>`"


def rule_ref(rule_id: str) -> str:
    """A link to a rule's card: the ``rule`` role, which fails the build for an id no card has."""
    return f":rule:`{rule_id}`"


def rule_page(rule: _model.Rule) -> str:
    """The catalogue page (docname) of a rule: one page per rule file."""
    return f"{CATALOGUE}/{Path(shown_path(rule.origin.file) if rule.origin else 'generated').stem}"


#: Roles the fragments use: each renders its text as a span with the role's
#: name as class, for the CSS and for tests that read the built pages.
CLASS_ROLES = ("backcare-rule-id", "backcare-red-flag-id", "backcare-contraindication-id", "backcare-badge",
               "backcare-label",
               *(f"backcare-evidence-{level}" for level in _model.EVIDENCE_LEVELS))


def roles() -> list[str]:
    return []


def _class_role(cls: str) -> Any:
    def role(name: str, rawtext: str, text: str, lineno: int, inliner: Any,
             options: Any = None, content: Any = None) -> tuple[list[nodes.Node], list[nodes.system_message]]:
        return [nodes.inline(rawtext, text, classes=[cls])], []

    return role


def show_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def shown_path(file: str | None) -> str:
    """A rule file's path as the reader knows it: ``rules/<name>.toml``."""
    if not file:
        return "?"
    try:
        return "rules/" + Path(file).resolve().relative_to(_loader.default_rules_path().resolve()).as_posix()
    except ValueError:
        return Path(file).name


def evidence_badge(level: str) -> str:
    return f":backcare-evidence-{level}:`{level}`"


# ---------------------------------------------------------------------------
# Fragments


def profile_fields() -> list[str]:
    rows = []
    targets = {"red_flags": ("red flags", "catalogue-red-flags"),
               "conditions": ("contraindications", "catalogue-contraindications"),
               "local_conditions": ("local contraindications (effect avoid_area)", "catalogue-contraindications")}
    for spec in _profile.core_fields().values():
        accepts = esc(spec.expected())
        if spec.choices_from:
            what, target = targets[spec.choices_from]
            accepts = f"a list of ids from the :ref:`{what} catalogue <{target}>`"
        if spec.default is not None:
            accepts += f"; default {lit(show_value(spec.default))}"
        rows.append([f"``{spec.name}``", lit(spec.type), accepts, esc(spec.description)])
    for spec in _profile.COMPUTED_FACTS.values():
        rows.append([f"``{spec.name}``", lit(spec.type), "computed, never given", esc(spec.description)])
    return list_table(["Field", "Type", "Accepts", "Meaning"], rows, "backcare-fields", "20 8 32 40")


def _key_rows(keys: dict[str, Any]) -> list[list[str]]:
    return [[f"``{k.name}``", esc(k.type), "yes" if k.required else "", _doc_with_literals(k.doc)]
            for k in keys.values()]


def _doc_with_literals(doc: str) -> str:
    """Key docs mark names with single backquotes (Markdown style): render them as literals."""
    parts = doc.split("`")
    return "".join(f"``{p}``" if i % 2 else esc(p) for i, p in enumerate(parts)).strip()


def rule_schema() -> list[str]:
    single = {"pack", "urgency"}
    out: list[str] = []
    for table, keys in _loader.SCHEMA.items():
        title = f"[{table}]" if table in single else f"[[{table}]]"
        out += [f".. _schema-{table}:", ""] + heading(title, "~")
        if table == "urgency":
            out += ["One sub-table per urgency level, e.g. ``[urgency.emergency]``, each with one key,",
                    "``action``: what the person should do, shown with every referral of that urgency.", ""]
        out += list_table(["Key", "Type", "Required", "Meaning"], _key_rows(keys), "backcare-keys", "16 14 10 60")
    out += ['.. _schema-disable:', ""] + heading("disable", "~")
    others = sorted(_loader.TOP_LEVEL_KEYS)
    out += [f"A top-level key ({', '.join(lit(o) for o in others)}): a list of rule ids from earlier packs "
            "to switch off. See :ref:`packs`.", ""]
    nested = [("then", "The ``then`` table of a rule", _loader.THEN_KEYS),
              ("then.exclude", "``then.exclude``", _loader.EXCLUDE_KEYS),
              ("then.refer", "``then.refer``", _loader.REFER_KEYS),
              ("example.expect", "The ``expect`` table of an example", _loader.EXPECT_KEYS),
              ("urgency.level", "Each ``[urgency.<level>]``", _loader.URGENCY_KEYS)]
    for name, title, keys in nested:
        out += [f".. _schema-{name}:", ""] + heading(title, "~")
        out += list_table(["Key", "Type", "Required", "Meaning"], _key_rows(keys), "backcare-keys", "16 14 10 60")
    return out


def condition_operators() -> list[str]:
    samples = {"eq": 7, "ne": "chronic", "gt": 12, "ge": 4, "lt": 4, "le": 12,
               "in": ("acute", "subacute"), "contains": "osteoporosis", "lacks": "recent_surgery",
               "given": False}
    notes = {"contains": "a list field includes the id",
             "lacks": "a list field, as the profile gives it, does not include the id (decided before the "
                      "rules run: derived facts never count); the only test in its condition",
             "given": "whether the profile gives the field at all (decided before the rules run); the only "
                      "test in its condition"}
    rows = []
    for op in _model.OPERATORS:
        value = samples.get(op, 1)
        toml = (f'[{", ".join(_toml(v) for v in value)}]' if isinstance(value, tuple) else _toml(value))
        reads = esc(_model.Test(op, value).describe())
        if op in notes:
            reads += f" ({esc(notes[op])})"
        rows.append([f"``{op}``", f"``fact = {{ {op} = {toml} }}``", reads])
    out = list_table(["Operator", "In a rule file", "Reads as"], rows, "backcare-operators", "15 45 40")
    return out


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def name_patterns() -> list[str]:
    return [f"- **id**: matches ``{_loader.ID_RE.pattern}``",
            f"- **name**: matches ``{_loader.NAME_RE.pattern}``", ""]


def engine_limits() -> list[str]:
    """The pack sizes the loader refuses, read from the loader's own constants."""
    rows = [
        ["rules in the rulebase", _loader.MAX_RULES, "error 106 past 4096 rules"],
        ["conditions in one rule", _loader.MAX_CONDITIONS_PER_RULE,
         "error 304 once more than 16 conditions hold together"],
        ["rules sharing one identical condition", _loader.MAX_SHARED_PATTERN,
         "error 108, or a read past the engine's list, at 256"],
        ["different facts tested by conditions", _loader.MAX_FACT_NAMES,
         "loading never returns past 511 (the engine's own bookkeeping uses one)"],
        ["different value tests on one fact (each value of an ``in`` counts)", _loader.MAX_VALUE_TESTS_PER_FACT,
         "error 303 when more than 64 hold at once; loading never returns past 511"],
        ["combinations of facts one rule can fire on", _loader.MAX_COMBINATIONS_PER_RULE,
         "not an engine error: facts derived with many values multiply the work"],
        ["profile fields", _loader.MAX_FIELDS, "a sanity bound on pack-declared fields"],
    ]
    return list_table(["Limit", "At most", "What durable-rules 2.0.28 does past it"],
                      [[a, str(b), c] for a, b, c in rows], "backcare-limits", "40 12 48")


def input_limits() -> list[str]:
    """The bounds on what backcare reads, from the constants the loader and the command use."""
    from backcare._loader import read

    pack_bytes = read.describe_bytes(_loader.DEFAULT_MAX_PACK_BYTES)
    profile_bytes = read.describe_bytes(_cli.DEFAULT_MAX_PROFILE_BYTES)
    rows = [
        ["size of a rule pack (all its files)", pack_bytes,
         f"``{_loader.MAX_PACK_BYTES_ENV}``, or ``Recommender(max_pack_bytes=...)``; the default pack is not capped"],
        ["rule files in one pack", f"{_loader.MAX_PACK_FILES:,}", ""],
        ["directory entries looked at for one pack", f"{_loader.MAX_DIRECTORY_ENTRIES:,}", ""],
        ["nesting in a rule file (tables, arrays and dotted-key parts together)", str(_loader.MAX_NESTING), ""],
        ["digits of a number in a rule file", str(_loader.MAX_NUMBER_DIGITS), ""],
        ["a weight in ``then.score``, either way", str(_loader.MAX_WEIGHT), ""],
        ["problems listed for one load (more at one line and key are folded)",
         f"{_loader.MAX_REPORTED_PROBLEMS:,}", ""],
        ["size of a profile read by ``backcare recommend``", profile_bytes, f"``{_cli.MAX_PROFILE_BYTES_ENV}``"],
        ["nesting of a JSON profile", str(_cli.MAX_JSON_DEPTH), ""],
        ["digits of a number in a JSON profile", str(_cli.MAX_JSON_DIGITS), ""],
    ]
    return list_table(["What", "At most", "Set with"], rows, "backcare-limits", "50 15 35")


def techniques(rb: _model.Rulebase) -> list[str]:
    rows = []
    order = {p: i for i, p in enumerate(_model.PRESSURES)}
    for t in sorted(rb.techniques.values(), key=lambda t: (order[t.pressure], t.id)):
        scored = sorted({r.id for r in rb.rules for tid, _ in r.then.score if tid == t.id})
        rows.append([f"``{t.id}``", esc(t.name), esc(t.pressure), esc(t.description),
                     ", ".join(rule_ref(r) for r in scored) or "none"])
    return list_table(["Id", "Name", "Pressure", "What the therapist does", "Scored by"], rows,
                      "backcare-techniques", "14 12 9 35 30")


def _conclusion_items(rule: _model.Rule) -> list[str]:
    then = rule.then
    items = []
    for fact, value in then.derive:
        items.append("derive " + lit(fact if value is True else f"{fact} = {show_value(value)}"))
    if then.score:
        items.append("score " + ", ".join(lit(f"{w:+g} {t}") for t, w in then.score))
    for flag in then.flag:
        items.append(f"raise red flag :ref:`{flag} <red-flag-{flag}>`")
    for implied in then.condition:
        items.append(f"treat as the condition :ref:`{implied} <contraindication-{implied}>`")
    if then.exclude:
        what = then.exclude.describe()  # "exclude deep_pressure", or "no massage at all"
        items.append(esc(what if what.startswith("exclude ") else f"exclude: {what}"))
    if then.refer:
        items.append(f"refer ({then.refer.urgency}): " + esc(then.refer.suspected))
    if then.note:
        items.append("note: " + esc(then.note))
    if then.warn:
        items.append("warning: " + esc(then.warn))
    return items


def rule_card(rule: _model.Rule, rb: _model.Rulebase) -> list[str]:
    classes = f"backcare-rule backcare-rule-{rule.evidence}" + (" backcare-rule-safety" if rule.safety else "")
    head = f":backcare-rule-id:`{rule.id}` {esc(rule.title)}"
    if rule.safety:
        head += " :backcare-badge:`safety`"
    body = [head, ""]
    body.append(":When: " + " and ".join(lit(c.describe()) for c in rule.when))
    items = _conclusion_items(rule)
    if len(items) == 1:
        body.append(":Then: " + items[0])
    else:
        body += [":Then:", ""] + indent([f"- {i}" for i in items], 6)[0:]
        body.append("")
    body.append(":Because: " + esc(rule.because))
    source = rb.sources[rule.source]
    body.append(f":Source: {source_ref(source.id)}: {esc(source.citation)}")
    if source.passage:
        body += ["", f"      *Passage:* “{esc(source.passage)}”", ""]
    body.append(f":Evidence: {evidence_badge(rule.evidence)} {esc(_model.EVIDENCE_MEANING[rule.evidence])}")
    if rule.caveat:
        cav = ":Caveat: " + esc(rule.caveat)
        if rule.caveat_source:
            cav += f" ({source_ref(rule.caveat_source)})"
        body.append(cav)
    if rule.safety:
        body.append(":Safety: a safety rule: a pack can disable or replace it only with "
                    "``allow_safety_overrides=True``, and results then say so")
    elif rule.id in rb.protected:
        body.append(":Safety: protected like a safety rule, because the safety rule(s) "
                    + ", ".join(rule_ref(r) for r in rb.protected[rule.id].needed_by)
                    + " test a fact it derives")
    if rule.origin:
        line = f", line {rule.origin.line}" if rule.origin.line else ""
        body.append(f":Defined in: ``{shown_path(rule.origin.file)}``{line}")
    return [f".. backcare-rule:: {rule.id}", f"   :class: {classes}", ""] + indent(body) + [""]


def _rule_sort_key(rule: _model.Rule) -> tuple[str, int, str]:
    o = rule.origin
    return (shown_path(o.file) if o else "", (o.line or 0) if o else 0, rule.id)


def _rules_by_file(rb: _model.Rulebase) -> dict[str, list[_model.Rule]]:
    by_file: dict[str, list[_model.Rule]] = {}
    for rule in sorted(rb.rules, key=_rule_sort_key):
        by_file.setdefault(shown_path(rule.origin.file) if rule.origin else "(generated)", []).append(rule)
    return by_file


def file_comment(path: str | None) -> list[str]:
    """The comment a rule file opens with, as paragraphs: what the file is for, in its author's words."""
    if not path:
        return []
    paragraphs: list[list[str]] = [[]]
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.startswith(("---", ":schema")):
            break
        if text:
            paragraphs[-1].append(text)
        elif paragraphs[-1]:
            paragraphs.append([])
    return [line for p in paragraphs if p for line in (_doc_with_literals(" ".join(p)), "")]


def rule_pages(rb: _model.Rulebase) -> dict[str, list[str]]:
    """One catalogue page per rule file: its opening comment, then a card per rule, in file order."""
    pages: dict[str, list[str]] = {}
    for file, group in _rules_by_file(rb).items():
        plain = [r for r in group if not _is_catalogue(r)]
        catalogue = [r for r in group if r not in plain]
        origin = group[0].origin
        out = [f".. Generated from {file} by docs/_ext/backcare_docs.py: edit the rule file, not this page.", ""]
        out += [f".. _catalogue-file-{Path(file).stem}:", ""] + heading(file, "=")
        out += file_comment(origin.file if origin else None)
        counts = _count(len(plain), "rule")
        if catalogue:
            counts += (f", and {_count(len(catalogue), 'rule')} compiled from its red-flag and contraindication "
                       "entries")
        out += [f"{counts}, in file order. Each card gives the rule's conditions (*When*), its conclusion "
                "(*Then*), the reason (*Because*), its source and :ref:`evidence level <evidence-levels>`, and "
                "the caveat where the evidence says otherwise.", ""]
        for rule in plain:
            out += rule_card(rule, rb)
        if catalogue:
            out += heading(f"Catalogue rules from {file}", "-")
            out += ["Each ``[[red_flag]]`` becomes a rule ``red-flag.<id>`` and each ``[[contraindication]]`` "
                    "a rule ``contraindication.<id>``; they are safety rules like the others. The "
                    ":ref:`red flag <catalogue-red-flags>` and :ref:`contraindication <catalogue-contraindications>` "
                    "tables list the entries themselves.", ""]
            for rule in catalogue:
                out += rule_card(rule, rb)
        pages[Path(file).stem] = out
    return pages


def rule_files(rb: _model.Rulebase) -> list[str]:
    """The catalogue's index of rule files: a table linking each page, and the toctree that holds them."""
    rows = []
    for file, group in _rules_by_file(rb).items():
        stem = Path(file).stem
        safety = sum(r.safety for r in group)
        summary = file_comment(group[0].origin.file if group[0].origin else None)
        rows.append([f":doc:`{file} <{CATALOGUE}/{stem}>`", str(len(group)), str(safety),
                     summary[0] if summary else ""])
    out = list_table(["Rule file", "Rules", "Safety rules", "What it holds"], rows, "backcare-rule-files",
                     "22 10 12 56")
    out += [".. toctree::", "   :hidden:", ""] + [f"   {CATALOGUE}/{Path(f).stem}" for f in _rules_by_file(rb)]
    return out + [""]


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _id_cell(role: str, ident: str, rule_id: str, anchor: str | None = None) -> str:
    """A catalogue id, with a link to the rule it compiles to underneath."""
    target = f".. _{anchor}:\n\n       " if anchor else ""
    return f"{target}:{role}:`{ident}`\n\n       :rule:`rule <{rule_id}>`"


def red_flags(rb: _model.Rulebase) -> list[str]:
    raised_by: dict[str, list[str]] = {}
    for rule in rb.rules:
        for flag in rule.then.flag:
            raised_by.setdefault(flag, []).append(rule.id)
    order = {u: i for i, u in enumerate(_model.URGENCIES)}
    rows = []
    for f in sorted(rb.red_flags.values(), key=lambda f: (order[f.urgency], f.suspected, f.id)):
        sign = esc(f.description)
        if f.id in raised_by:
            sign += "\n\n       *Also raised by* " + ", ".join(rule_ref(r) for r in sorted(raised_by[f.id]))
        rows.append([_id_cell("backcare-red-flag-id", f.id, f"red-flag.{f.id}", f"red-flag-{f.id}"), sign,
                     esc(f.suspected), f"**{f.urgency}**", source_ref(f.source)])
    return list_table(["Profile id", "Sign", "May point to", "Urgency", "Source"], rows,
                      "backcare-red-flags", "24 34 17 11 14")


def contraindications(rb: _model.Rulebase) -> list[str]:
    rows = []
    links: dict[str, list[str]] = {}
    for rule in rb.rules:
        for cond in rule.when:
            for test in cond.tests:
                if cond.fact == "conditions" and test.op == "contains" and rule.then.flag:
                    links.setdefault(str(test.value), []).append(
                        "raises the red flag " + ", ".join(f":ref:`{f} <red-flag-{f}>`" for f in rule.then.flag)
                        + f" ({rule_ref(rule.id)})")
        for implied in rule.then.condition:
            links.setdefault(implied, []).append(f"also implied by {rule_ref(rule.id)}")
    for c in sorted(rb.contraindications.values(), key=lambda c: (c.effect, c.id)):
        effect = f"**{c.effect}**"
        if c.exclude is not None and not c.exclude.all:
            effect += ": " + esc(c.exclude.describe().removeprefix("exclude "))
        if c.effect == "avoid_area":
            effect += (": every technique on the back, unless ``away_from_back`` lists it (then a warning "
                       f"only, rule {rule_ref(f'contraindication.{c.id}.elsewhere')})")
        if c.refer:
            effect += f"; refer ({c.refer.urgency}): {esc(c.refer.suspected)}"
        for link in links.get(c.id, []):
            effect += f"; {link}"
        rows.append([_id_cell("backcare-contraindication-id", c.id, f"contraindication.{c.id}",
                              f"contraindication-{c.id}"),
                     esc(c.description), effect, esc(c.because), source_ref(c.source)])
    return list_table(["Profile id", "Condition", "Effect", "Why", "Source"], rows,
                      "backcare-contraindications", "20 17 24 27 12")


def urgency_actions(rb: _model.Rulebase) -> list[str]:
    rows = [[f"**{u}**", esc(rb.urgency_actions.get(u, "")),
             "every technique is withheld" if u in ("emergency", "urgent")
             else f"only techniques up to {rb.urgency_limits[u]} pressure until assessed"
             if u in rb.urgency_limits else "the ranking is kept"]
            for u in _model.URGENCIES]
    return list_table(["Urgency", "What the result tells the person", "Techniques"], rows,
                      "backcare-urgency", "12 63 25")


def catalogue_summary(rb: _model.Rulebase) -> list[str]:
    safety = sum(r.safety for r in rb.rules)
    return [f"The default rule pack holds **{len(rb.rules)} rules** ({safety} of them safety rules), "
            f"**{len(rb.techniques)} techniques**, **{len(rb.red_flags)} red flags**, "
            f"**{len(rb.contraindications)} contraindications** and **{len(rb.sources)} sources**, "
            f"with {len(rb.examples)} embedded examples.", ""]


def seed_claims(rb: _model.Rulebase) -> list[str]:
    rows = []
    seed_rules = [r for r in rb.rules if rb.sources[r.source].kind == "seed"]
    for rule in sorted(seed_rules, key=_rule_sort_key):
        caveat = esc(rule.caveat) if rule.caveat else "—"
        if rule.caveat_source:
            caveat += f" ({source_ref(rule.caveat_source)})"
        rows.append([rule_ref(rule.id), esc(rule.title), evidence_badge(rule.evidence), caveat])
    return roles() + list_table(["Rule", "What the seed claims", "Evidence", "What the research says"], rows,
                                "backcare-seed-claims", "22 30 10 38")


def evidence_levels(rb: _model.Rulebase) -> list[str]:
    rows = []
    for level in _model.EVIDENCE_LEVELS:
        n = sum(r.evidence == level for r in rb.rules)
        rows.append([evidence_badge(level), esc(_model.EVIDENCE_MEANING[level]), str(n)])
    return roles() + list_table(["Level", "Meaning", "Rules in the default pack"], rows,
                                "backcare-evidence-levels", "15 65 20")


def sources(rb: _model.Rulebase) -> list[str]:
    cited: dict[str, list[str]] = {}
    for rule in rb.rules:
        cited.setdefault(rule.source, []).append(rule.id)
        if rule.caveat_source:
            cited.setdefault(rule.caveat_source, []).append(rule.id)
    kinds = [("guideline", "Clinical guidelines"), ("review", "Systematic reviews and reference works"),
             ("trial", "Randomised trials"), ("study", "Other studies"), ("convention", "Conventions"),
             ("seed", "The seed document")]
    out: list[str] = []
    for kind, title in kinds:
        group = [s for s in rb.sources.values() if s.kind == kind]
        if not group:
            continue
        out += heading(title, "~")
        for s in group:
            out += [f".. _source-{s.id}:", "", f"``{s.id}``", ""]
            out += indent([esc(s.citation)])
            if s.passage:
                out += [""] + indent([f"*Passage:* “{esc(s.passage)}”"])
            ids = sorted(set(cited.get(s.id, [])))
            if ids:
                shown = ids if len(ids) <= 8 else ids[:8]
                more = f" and {len(ids) - 8} more" if len(ids) > 8 else ""
                out += [""] + indent([f"Cited by {_count(len(ids), 'rule')}: " + ", ".join(rule_ref(i) for i in shown)
                                      + more])
            out.append("")
    # A definition-list-like layout: id, then indented citation.
    return out


def disclaimer() -> list[str]:
    return [".. admonition:: Information, not medical advice", "   :class: danger backcare-disclaimer", "",
            f"   {esc(backcare.DISCLAIMER)}", ""]


# ---------------------------------------------------------------------------
# The service: its FHIR code map and a CDS Hooks exchange, from the serve extra itself


def _serve_modules() -> Any:
    try:
        from backcare._serve import cds, fhir
    except ImportError as exc:  # pragma: no cover - the docs extra is installed with the serve extra
        raise RuntimeError(f"the docs need backcare's serve extra ({exc.name} is missing): "
                           "pip install -e '.[docs,serve]'") from exc
    return cds, fhir


def serve_codes() -> list[str]:
    """The FHIR code map (``backcare/_serve/fhir_codes.toml``) as a table, one row per code."""
    _, fhir = _serve_modules()
    codes = fhir.CodeMap.load(backcare.Recommender().fields)
    names = fhir.SYSTEM_NAMES

    def source(sid: str) -> str:
        src = codes.sources[sid]
        return f"`{esc(src.label)} <{src.url}>`__"

    pain = codes.pain
    rows = [["Observation", names[pain.system], lit(pain.code), esc(pain.display),
             f"``{pain.field}`` from its value (0-10)", source(pain.source)]]
    for m in codes.maps:
        gives = esc(fhir.describe_sets(m.sets, m.onset)) or ""
        if m.history:
            gives += " (whatever its clinical status)"
        for code, display in m.codes:
            rows.append([m.resource, names[m.system], lit(code), esc(display), gives, source(m.source)])
    notes = [f"- {esc(m.note)}" for m in codes.maps if m.note]
    return (list_table(["Resource", "System", "Code", "Display (as the source gives it)", "Gives", "Source"], rows,
                       "backcare-fhir-codes backcare-stack-wide", "12 10 12 26 20 20")
            + ["What the groups of codes are:", ""] + notes + [""])


SERVE_TODAY = "2026-06-15"


def _exchange_request(rows: list[dict[str, Any]], observations: list[dict[str, Any]],
                      medications: list[dict[str, Any]]) -> dict[str, Any]:
    def bundle(resources: list[dict[str, Any]]) -> dict[str, Any] | None:
        if not resources:
            return None
        return {"resourceType": "Bundle", "type": "searchset",
                "entry": [{"resource": r} for r in resources]}

    return {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/example", "patientId": "1288992"},
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": "1288992", "birthDate": "1971-04-12"},
            "conditions": bundle(rows),
            "observations": bundle(observations),
            "medications": bundle(medications),
        },
    }


def _condition(cid: str, system: str, code: str, display: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/1288992"},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]},
            "code": {"coding": [{"system": system, "code": code, "display": display}]}, **extra}


def serve_exchange() -> list[str]:
    """Discovery, and two service calls with their full responses, computed by the service's own code."""
    import datetime as dt
    import json

    cds, fhir = _serve_modules()
    rec = backcare.Recommender()
    codes = fhir.CodeMap.load(rec.fields)
    today = dt.date.fromisoformat(SERVE_TODAY)
    base = "http://127.0.0.1:8000/"
    subject = {"reference": "Patient/1288992"}
    treated = _exchange_request(
        [_condition("back-1", "http://hl7.org/fhir/sid/icd-10-cm", "M54.50", "Low back pain, unspecified",
                    onsetDateTime="2026-01-26"),
         _condition("other-1", "http://snomed.info/sct", "38341003", "Hypertensive disorder")],
        [{"resourceType": "Observation", "id": "pain-1", "status": "final", "subject": subject,
          "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
          "effectiveDateTime": "2026-06-14T09:30:00Z", "valueInteger": 6}],
        [{"resourceType": "MedicationStatement", "id": "med-1", "status": "active", "subject": subject,
          "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                    "code": "855332",
                                                    "display": "warfarin sodium 5 MG Oral Tablet"}]}}],
    )
    emergency = _exchange_request(
        [_condition("uro-1", "http://snomed.info/sct", "267064002", "Retention of urine (disorder)")], [], [])

    def block(data: Any) -> list[str]:
        return [".. code-block:: json", ""] + indent(json.dumps(data, indent=2, ensure_ascii=False).splitlines()) + [""]

    out = heading("Discovery", "-")
    out += [".. code-block:: console", "", "   $ curl http://127.0.0.1:8000/cds-services", ""]
    out += block(cds.discovery(codes))
    for title, request in (("A patient on warfarin with low back pain", treated),
                           ("A patient who cannot pass urine", emergency)):
        response, _, _ = cds.answer(request, rec, codes, today, base)
        out += heading(title, "-")
        out += [".. code-block:: console", "",
                "   $ curl -X POST -H 'Content-Type: application/json' --data @request.json \\",
                f"       http://127.0.0.1:8000/cds-services/{cds.SERVICE_ID}", "", "The request:", ""]
        out += block(request)
        out += [f"The response (counted to {SERVE_TODAY}):", ""]
        out += block(response)
    return out


# ---------------------------------------------------------------------------
# The chaining diagrams


def _q(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _attrs(**kw: object) -> str:
    return "[" + ", ".join(f"{k}={_q(v)}" for k, v in kw.items()) + "]"


#: Edge colours by evidence level: darker versions of EVIDENCE_COLOURS, so a
#: thin line still shows its level. Seed claims are also dashed.
EDGE_COLOURS = {"guideline": "#2e7d32", "trial": "#1f5fa8", "low": "#b7791f", "claim": "#c0392b",
                "refuted": "#777777"}

_HEADER = [
    # Drawn at full size (no size= scaling): a page shows it scaled to its
    # column and links to it at this size, where 12pt (16px) is the smallest text.
    '  graph [rankdir=LR, nodesep=0.12, ranksep=0.5, bgcolor="transparent", newrank=true, forcelabels=true];',
    '  node [fontsize=14, margin="0.10,0.03", height=0.32];',
    '  edge [fontsize=13, arrowsize=0.7, penwidth=1.3];',
]


def _is_catalogue(rule: _model.Rule) -> bool:
    return rule.id.startswith(("red-flag.", "contraindication."))


def _rule_url(rule: _model.Rule, page: str) -> str:
    """A rule's card, from the page the diagram is on (at the root, as ``catalogue.html`` is)."""
    return f"{rule_page(rule)}.html#{make_id(rule_label(rule.id))}"


class _Graph:
    """Nodes for fields, derived-fact values and techniques; rules become edges."""

    def __init__(self, rb: _model.Rulebase, page: str, *, xlabels: bool = True, fontsize: int = 14) -> None:
        self.rb = rb
        self.page = page
        #: External labels keep a big graph narrow; a small one reads better with
        #: labels on the edges.
        self.label = "xlabel" if xlabels else "label"
        self.fontsize = fontsize
        self.derived: dict[str, set[object]] = {}
        for rule in rb.rules:
            for fact, value in rule.then.derive:
                self.derived.setdefault(fact, set()).add(value)
        self.nodes: dict[str, str] = {}
        self.edges: list[str] = []
        self.fields: set[str] = set()
        self.techs: set[str] = set()

    def fact(self, name: str, value: object = True) -> str:
        """The node for ``name`` (a field), or for the derived value ``name = value``."""
        if name not in self.derived:
            self.fields.add(name)
            key = f"field:{name}"
            self.nodes[key] = _attrs(label=name, shape="box", style="filled", fillcolor=FIELD_COLOUR,
                                     color="#5c5c9c")
            return key
        label = name if value is True else f"{name} = {show_value(value)}"
        key = f"fact:{label}"
        self.nodes[key] = _attrs(label=label, shape="ellipse", style="filled", fillcolor=FACT_COLOUR,
                                 color="#a08c3c")
        return key

    def tech(self, tid: str) -> str:
        tech = self.rb.techniques[tid]
        self.techs.add(tid)
        key = f"tech:{tid}"
        self.nodes[key] = _attrs(label=tech.name, shape="box", style="filled,bold", fillcolor=TECHNIQUE_COLOUR,
                                 color="#2e7d32", tooltip=f"{tech.name} ({tech.pressure} pressure)")
        return key

    def sources(self, rule: _model.Rule) -> tuple[list[tuple[str, str]], str]:
        """(node, edge label) pairs a rule starts from, and the part of its label it shares.

        A test of a derived value (``duration = chronic``, ``duration in acute,
        subacute``) starts from the value nodes themselves; any other test
        labels the edge.
        """
        if len(rule.when) != 1:
            junction = f"rule:{rule.id}"
            self.nodes[junction] = _attrs(label=rule.id, shape="box", style="rounded,filled", fontsize=12,
                                          fillcolor=EVIDENCE_COLOURS[rule.evidence],
                                          color=SAFETY_COLOUR if rule.safety else EDGE_COLOURS[rule.evidence],
                                          URL=_rule_url(rule, self.page), target="_top", tooltip=rule.title)
            for cond in rule.when:
                for node, label in self._cond(cond):
                    self.edges.append(f"  {_q(node)} -> {_q(junction)} " + _attrs(
                        **{self.label: label}, color=EDGE_COLOURS[rule.evidence], fontcolor="#333333"))
            return [(junction, "")], ""
        return self._cond(rule.when[0]), ""

    def _cond(self, cond: _model.Condition) -> list[tuple[str, str]]:
        if cond.fact in self.derived and len(cond.tests) == 1 and cond.tests[0].op in ("eq", "in"):
            test = cond.tests[0]
            values = test.value if isinstance(test.value, tuple) else (test.value,)
            return [(self.fact(cond.fact, v), "") for v in values]
        label = " and ".join(t.describe() for t in cond.tests)
        return [(self.fact(cond.fact), "" if label == "= true" else label)]

    def edge(self, rule: _model.Rule, src: str, label: str, dst: str, extra: str = "", **kw: object) -> None:
        text = ": ".join(p for p in (label, extra) if p)
        attrs = {self.label: text, "color": EDGE_COLOURS[rule.evidence], "fontcolor": "#333333",
                 "style": "dashed" if rule.evidence in ("claim", "refuted") else "solid",
                 "URL": _rule_url(rule, self.page), "target": "_top",
                 "tooltip": f"{rule.id}: {rule.title} (evidence: {rule.evidence})"}
        attrs.update(kw)
        self.edges.append(f"  {_q(src)} -> {_q(dst)} " + _attrs(**attrs))

    def render(self, extra_nodes: Sequence[str] = (), tail: Sequence[str] = ()) -> str:
        lines = ["digraph chain {", *_HEADER]
        if self.fontsize != 14:
            lines += [f"  node [fontsize={self.fontsize}];", f"  edge [fontsize={self.fontsize - 1}];"]
        lines += [f"  {_q(k)} {v}" for k, v in sorted(self.nodes.items())]
        lines += list(extra_nodes) + self.edges
        if self.fields:
            lines.append("  { rank=min; " + " ".join(_q("field:" + f) for f in sorted(self.fields)) + " }")
        lines += list(tail)
        lines.append("}")
        return "\n".join(lines) + "\n"


def chain_dot(rb: _model.Rulebase, page: str = "catalogue.html") -> str:
    """How profile fields and derived facts chain into technique scores, as Graphviz dot.

    Every rule that is not a safety rule is drawn as edges, from the facts it
    tests to the facts it derives and the techniques it scores; a rule with
    several conditions gets a box of its own where they meet.
    """
    g = _Graph(rb, page)
    notes = False
    for rule in rb.rules:
        if rule.safety:
            continue
        starts, _ = g.sources(rule)
        for src, label in starts:
            for fact, value in rule.then.derive:
                g.edge(rule, src, label, g.fact(fact, value))
            for tid, weight in rule.then.score:
                neg = weight < 0
                g.edge(rule, src, label, g.tech(tid), f"{weight:+g}".replace("-", "−"),
                       fontcolor="#b03a2e" if neg else "#1b5e20", arrowhead="tee" if neg else "normal")
            if rule.then.note:
                notes = True
                g.edge(rule, src, label, "out:notes", style="dotted")
    extra = []
    tail = []
    if notes:
        extra.append('  "out:notes" ' + _attrs(label="notes", shape="note", style="filled", fillcolor="#f3f3f3",
                                               color="#777777", fontsize=12))
    if g.techs:
        tail.append("  { rank=max; " + " ".join(_q("tech:" + t) for t in sorted(g.techs)) + " }")
    return g.render(extra, tail)


def safety_dot(rb: _model.Rulebase, page: str = "catalogue.html") -> str:
    """How safety rules turn profile fields into referrals, exclusions and warnings.

    The catalogue rules (one per red flag and contraindication) are folded
    into one box each.
    """
    g = _Graph(rb, page, xlabels=False, fontsize=13)
    outs = {
        "out:referral": _attrs(label="referral", shape="octagon", style="filled", fillcolor="#f9d6d2",
                               color=SAFETY_COLOUR),
        "out:excluded": _attrs(label="excluded techniques", shape="octagon", style="filled", fillcolor="#f9d6d2",
                               color=SAFETY_COLOUR),
        "out:warnings": _attrs(label="warnings", shape="note", style="filled", fillcolor="#f3f3f3",
                               color="#777777"),
    }
    used: set[str] = set()
    for rule in rb.rules:
        if not rule.safety or _is_catalogue(rule):
            continue
        starts, _ = g.sources(rule)
        for src, label in starts:
            for fact, value in rule.then.derive:
                g.edge(rule, src, label, g.fact(fact, value))
            for implied in rule.then.condition:
                g.edge(rule, src, label, g.fact("conditions"), f"condition {implied}")
            for flag in rule.then.flag:
                used.add("out:referral")
                g.edge(rule, src, label, "out:referral", f"red flag {flag}")
            if rule.then.exclude:
                used.add("out:excluded")
                g.edge(rule, src, label, "out:excluded", rule.then.exclude.describe())
            if rule.then.refer:
                used.add("out:referral")
                g.edge(rule, src, label, "out:referral", rule.then.refer.urgency)
            if rule.then.warn:
                used.add("out:warnings")
                g.edge(rule, src, label, "out:warnings")
    extra = []
    for fact, anchor, what in (("red_flags", "catalogue-red-flags", "red-flag"),
                               ("conditions", "catalogue-contraindications", "contraindication")):
        group = [r for r in rb.rules if r.id.startswith(what + ".")]
        if not group:
            continue
        box = f"cat:{what}"
        extra.append(f"  {_q(box)} " + _attrs(
            label=f"{len(group)} {what} rules", shape="box", style="rounded,filled,bold",
            fillcolor="#fbe3e0", color=SAFETY_COLOUR, fontsize=12, URL=f"{page}#{anchor}", target="_top",
            tooltip=f"One rule per entry of the {what} catalogue"))
        g.edges.append(f"  {_q(g.fact(fact))} -> {_q(box)} " + _attrs(**{g.label: "includes <id>"}, color="#555555"))
        for out, present in (("out:referral", any(r.then.refer for r in group)),
                             ("out:excluded", any(r.then.exclude for r in group)),
                             ("out:warnings", any(r.then.warn for r in group))):
            if present:
                used.add(out)
                g.edges.append(f"  {_q(box)} -> {_q(out)} " + _attrs(color=SAFETY_COLOUR))
    extra += [f"  {_q(k)} {v}" for k, v in outs.items() if k in used]
    tail = ["  { rank=max; " + " ".join(_q(k) for k in outs if k in used) + " }"] if used else []
    return g.render(extra, tail)


def diagram_legend() -> list[str]:
    parts = [f"{evidence_badge(level)} {esc(_model.EVIDENCE_MEANING[level])}" for level in _model.EVIDENCE_LEVELS]
    lines = ["Read it left to right: blue boxes are :ref:`profile fields <profile-fields>`, yellow ellipses are "
             "derived facts (with their value, where they have one), green boxes are techniques. Each arrow is a "
             "rule: its label is the condition the rule tests (none means ``= true``) and, into a technique, the "
             "weight it adds; a bar instead of an arrowhead is a negative weight. A rule with several "
             "conditions gets a box where they meet. Arrows are coloured by the rule's evidence level, and "
             "seed claims are dashed. Hover over an arrow for its rule; click it to jump to the rule below.", "",
             "Evidence levels:", ""] + [f"- {p}" for p in parts] + [""]
    return lines


# ---------------------------------------------------------------------------
# The command-line reference, from the argparse parser itself


class _Fmt(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=88, max_help_position=30)


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                out.append((name, helps.get(name, ""), sub))
    return out


def _arg_rows(parser: argparse.ArgumentParser) -> list[list[str]]:
    rows = []
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if a.option_strings:
            name = ", ".join(a.option_strings)
            if a.nargs != 0:
                name += " " + (a.metavar or a.dest.upper())
        else:
            name = a.metavar or a.dest
            if a.nargs in ("+", "*"):
                name += " ..."
        details = esc(a.help or "")
        if a.choices:
            details += " Choices: " + ", ".join(lit(c) for c in a.choices) + "."
        if isinstance(a, argparse._AppendAction) and "repeatable" not in (a.help or ""):
            details += " Repeatable."
        rows.append([lit(name), details])
    return rows


def cli_reference() -> list[str]:
    parser = _cli._parser()
    out: list[str] = []

    def walk(p: argparse.ArgumentParser, path: list[str], help_text: str, depth: int) -> None:
        p.formatter_class = _Fmt
        subs = _subparsers(p)
        prog = " ".join(["backcare", *path])
        if path:
            out.extend([f".. _cli-{'-'.join(path)}:", ""] + heading(prog, "-~"[min(depth - 1, 1)]))
        if help_text:
            out.extend([esc(help_text[0].upper() + help_text[1:]) + ".", ""])
        if p.description and not path:
            out.extend([esc(p.description), ""])
        out.extend([".. code-block:: text", ""] + indent(p.format_usage().strip().splitlines()) + [""])
        rows = _arg_rows(p)
        if rows:
            out.extend(list_table(["Argument", "Meaning"], rows, "backcare-cli-args", "30 70"))
        for name, sub_help, sub in subs:
            walk(sub, [*path, name], sub_help, depth + 1)

    walk(parser, [], "", 0)
    return out


def cli_intro() -> list[str]:
    # The module docstring is reStructuredText already.
    return [" ".join(par.split()) + "\n" for par in (_cli.__doc__ or "").strip().split("\n\n")]


# ---------------------------------------------------------------------------
# Writing the fragments


def changelog_releases(text: str) -> list[tuple[str, str | None]]:
    """The changelog's entries, newest first: (``Unreleased`` or a version, its date or None)."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^## \[([^\]]+)\](?: - (\S+))?", text, re.M)]


def changelog_version(changelog: Path) -> list[str]:
    """What version these pages document, and where its changes are in the changelog below (Markdown).

    A development version (``0.2.0.dev0``) is what ``[Unreleased]`` describes;
    a release must have an entry of its own. tests/test_docs.py holds the
    changelog to the same rule.
    """
    from packaging.version import Version

    version = Version(backcare.__version__)
    releases = [v for v, date in changelog_releases(changelog.read_text(encoding="utf-8")) if v != "Unreleased"]
    latest = f" The latest release is {releases[0]}." if releases else ""
    if version.is_devrelease or version.is_prerelease:
        return [f"These pages document backcare **{version}**, a development version of {version.base_version}: "
                f"what it changes so far is under *Unreleased* below.{latest}", ""]
    return [f"These pages document backcare **{version}**: its changes are under *{version}* below.", ""]


def _write(path: Path, text: str) -> None:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.write_text(text, encoding="utf-8")


def generate(srcdir: Path) -> dict[str, str]:
    """Write every fragment under ``srcdir/_generated``; return their texts by name."""
    rb = _loader.load([_loader.default_rules_path()])
    out_dir = srcdir / GENERATED
    out_dir.mkdir(exist_ok=True)
    fragments = {
        "disclaimer.rst": disclaimer(),
        "profile-fields.rst": profile_fields(),
        "rule-schema.rst": rule_schema(),
        "condition-operators.rst": condition_operators(),
        "name-patterns.rst": name_patterns(),
        "engine-limits.rst": engine_limits(),
        "input-limits.rst": input_limits(),
        "catalogue-summary.rst": catalogue_summary(rb),
        "catalogue-techniques.rst": techniques(rb),
        "catalogue-files.rst": rule_files(rb),
        "catalogue-red-flags.rst": red_flags(rb),
        "catalogue-contraindications.rst": contraindications(rb),
        "catalogue-urgency.rst": urgency_actions(rb),
        "catalogue-legend.rst": diagram_legend(),
        "seed-claims.rst": seed_claims(rb),
        "evidence-levels.rst": evidence_levels(rb),
        "sources.rst": sources(rb),
        "cli-intro.rst": cli_intro(),
        "serve-codes.rst": serve_codes(),
        "serve-exchange.rst": serve_exchange(),
        "cli.rst": cli_reference(),
    }
    texts = {name: "\n".join(lines).rstrip() + "\n" for name, lines in fragments.items()}
    texts["changelog-version.md"] = "\n".join(changelog_version(srcdir.parent / "CHANGELOG.md"))
    texts["chain.dot"] = chain_dot(rb)
    texts["safety.dot"] = safety_dot(rb)
    for name, text in texts.items():
        _write(out_dir / name, text)
    # The rule pages are pages of their own, so they live outside _generated/ (which holds fragments).
    pages_dir = srcdir / CATALOGUE
    pages_dir.mkdir(exist_ok=True)
    pages = {f"{stem}.rst": "\n".join(lines).rstrip() + "\n" for stem, lines in rule_pages(rb).items()}
    for stale in set(p.name for p in pages_dir.glob("*.rst")) - set(pages):
        (pages_dir / stale).unlink()
    for name, text in pages.items():
        _write(pages_dir / name, text)
    return texts


def _on_builder_inited(app: Sphinx) -> None:
    generate(Path(app.srcdir))


# ---------------------------------------------------------------------------
# Examples a reader can follow: files, commands, and a clean directory per page
#
# Every page's examples run in a directory of their own that starts empty, as
# for a reader who has just run ``pip install backcare``: ``backcare-file``
# shows a file and writes it there (for the commands after it, and, through a
# hidden doctest step, for the Python examples), and ``backcare-command`` runs
# there. tests/test_docs_examples.py does the same outside Sphinx.


def _workdir(env: Any) -> Path:
    """The directory this page's examples run in while it is read (removed once it has been read)."""
    path = env.temp_data.get("backcare_workdir")
    if path is None:
        path = env.temp_data["backcare_workdir"] = Path(tempfile.mkdtemp(prefix="backcare-docs-"))
    return Path(path)


def _drop_workdir(app: Sphinx, doctree: nodes.document) -> None:
    path = app.env.temp_data.pop("backcare_workdir", None)
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


class BackcareFile(SphinxDirective):
    """Show a file the reader creates, and create it in the page's directory.

    The argument is the file's path relative to the reader's working
    directory; the content is the file, or ``:from:`` names a file of this
    checkout to show (relative to the page). The file is written for the
    ``backcare-command`` blocks after it and, by a doctest step hidden from
    the page, for the Python examples after it, so the page works exactly as
    a reader following it would.
    """

    required_arguments = 1
    has_content = True
    option_spec = {"from": directives.unchanged, "language": directives.unchanged,
                   "linenos": directives.flag}

    def run(self) -> list[nodes.Node]:
        from sphinx.directives.code import container_wrapper

        rel = self.arguments[0]
        _check_relative(self, rel)
        if "from" in self.options:
            source = (Path(self.env.doc2path(self.env.docname)).parent / self.options["from"]).resolve()
            self.env.note_dependency(str(source))
            text = source.read_text(encoding="utf-8")
        else:
            if not self.content:
                raise self.error("backcare-file: give the file's content, or :from:")
            text = "\n".join(self.content) + "\n"
        target = _workdir(self.env) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        language = self.options.get("language") or {".toml": "toml", ".json": "json", ".py": "python",
                                                     ".yml": "yaml", ".yaml": "yaml", ".ini": "ini",
                                                     ".cfg": "ini", ".html": "html"}.get(Path(rel).suffix, "text")
        block = nodes.literal_block(text, text.rstrip("\n"), language=language)
        block["classes"].append("backcare-file")
        if "linenos" in self.options:
            block["linenos"] = True
        self.set_source_info(block)
        shown = container_wrapper(self, block, rel)
        return [shown, _hidden_write(self, rel, text)]


def _check_relative(directive: SphinxDirective, rel: str) -> None:
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise directive.error(f"{directive.name}: {rel!r} must be a relative path inside the working directory")


def _hidden_write(directive: SphinxDirective, rel: str, text: str) -> nodes.Node:
    """A doctest step, not shown on the page, that writes ``text`` to ``rel`` where the Python examples run."""
    code = (f">>> import pathlib as _pathlib\n"
            f">>> _pathlib.Path({str(Path(rel).parent)!r}).mkdir(parents=True, exist_ok=True)\n"
            f">>> _ = _pathlib.Path({rel!r}).write_text({text!r}, encoding='utf-8')\n")
    hidden = nodes.comment(code, code, testnodetype="doctest", groups=["default"], options={})
    directive.set_source_info(hidden)
    return hidden


class BackcareCommand(SphinxDirective):
    """Run ``backcare ARGS`` and show the command and its real output.

    It runs in the page's directory (holding the files ``backcare-file``
    wrote above it), or with ``:cwd: checkout`` at the root of this checkout,
    for commands about the checkout itself. ``:exit:`` is the exit code the
    command must end with (default 0); anything else fails the build, so a
    command shown in the docs always works. ``:lines:`` keeps only the first
    N lines of output. ``:stdout: FILE`` shows the command as ``... > FILE``
    and writes what it prints to that file instead of showing it, for the
    commands and Python examples after it.
    """

    required_arguments = 1
    final_argument_whitespace = True
    option_spec = {"exit": directives.nonnegative_int, "lines": directives.positive_int,
                   "cwd": lambda arg: directives.choice(arg, ("page", "checkout")),
                   "stdout": directives.unchanged_required}

    def run(self) -> list[nodes.Node]:
        argv = shlex.split(self.arguments[0])
        if not argv or argv[0] != "backcare":
            raise self.error("backcare-command: the command must start with 'backcare'")
        checkout = Path(self.env.srcdir).parent
        where = checkout if self.options.get("cwd") == "checkout" else _workdir(self.env)
        rules_dir = _loader.default_rules_path()
        for file in _loader.pack_files(rules_dir):
            self.env.note_dependency(str(file))
        out, err = io.StringIO(), io.StringIO()
        cwd = os.getcwd()
        try:
            os.chdir(where)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = _cli.main(argv[1:])
                except SystemExit as exc:  # argparse usage errors
                    code = exc.code if isinstance(exc.code, int) else 2
        finally:
            os.chdir(cwd)
        expected = self.options.get("exit", 0)
        if code != expected:
            raise self.error(f"backcare-command {self.arguments[0]!r} exited {code}, expected {expected}: "
                             f"{err.getvalue().strip()[:500]}")
        if "stdout" in self.options:
            rel = self.options["stdout"]
            _check_relative(self, rel)
            (where / rel).parent.mkdir(parents=True, exist_ok=True)
            (where / rel).write_text(out.getvalue(), encoding="utf-8")
            shown = f"$ {self.arguments[0]} > {rel}"
            extra = [_hidden_write(self, rel, out.getvalue())]
            text = err.getvalue()
        else:
            text = out.getvalue() + err.getvalue()
            extra = []
        for root in (where, where.resolve()):
            text = text.replace(str(root) + os.sep, "")
        lines = text.rstrip("\n").splitlines()
        if "lines" in self.options and len(lines) > self.options["lines"]:
            lines = lines[: self.options["lines"]] + ["..."]
        shown = "\n".join(["$ " + self.arguments[0] if "stdout" not in self.options else shown, *lines])
        block = nodes.literal_block(shown, shown, language="console")
        block["classes"].append("backcare-command")
        self.set_source_info(block)
        return [block, *extra]


# ---------------------------------------------------------------------------
# Rules as objects of the docs: searchable, linkable with :rule:`id`, indexed


class RuleCard(SphinxDirective):
    """A rule's card: a box with the rule's id as its anchor, registered as a ``rule`` object."""

    required_arguments = 1
    has_content = True
    option_spec = {"class": directives.class_option}

    def run(self) -> list[nodes.Node]:
        rule_id = self.arguments[0]
        node_id = make_id(rule_label(rule_id))
        box = nodes.container(classes=self.options.get("class", []), ids=[node_id])
        self.set_source_info(box)
        self.state.nested_parse(self.content, self.content_offset, box)
        std = (self.env.domains.standard_domain if hasattr(self.env.domains, "standard_domain")
               else self.env.get_domain("std"))
        std.note_object("rule", rule_id, node_id, location=box)
        # A main entry: searching the id lists its card first.
        index = addnodes.index(entries=[("pair", f"{rule_id}; rule", node_id, "main", None)])
        return [index, box]


class BreakableIds(SphinxPostTransform):
    """Let ids in table cells wrap only between their parts: a ``<wbr>`` after each ``_``, ``.``, ``-`` and ``/``.

    A narrow column then breaks ``recent_spinal_procedure`` at an underscore,
    never inside a word, and nothing is added to the text a reader copies.
    """

    default_priority = 400
    formats = ("html",)
    _JOIN = re.compile(r"(?<=\w[_./-])(?=\w)")

    def run(self, **kwargs: Any) -> None:
        for entry in self.document.findall(nodes.entry):
            for text in list(entry.findall(nodes.Text)):
                parts = self._JOIN.split(str(text))
                if len(parts) < 2 or isinstance(text.parent, (nodes.raw, nodes.literal_block)):
                    continue
                new: list[nodes.Node] = []
                for i, part in enumerate(parts):
                    if i:
                        new.append(nodes.raw("", "<wbr>", format="html"))
                    new.append(nodes.Text(part))
                text.parent.replace(text, new)


def _reread_rule_pages(app: Sphinx, env: Any, added: set[str], changed: set[str], removed: set[str]) -> list[str]:
    """Read the rule pages on every build, not only when they change.

    Sphinx 9 keeps a page's search-index entries only in the build that reads
    it, so after an incremental build searching a rule id would no longer put
    its card first.
    """
    return sorted(d for d in env.found_docs if d.startswith(CATALOGUE + "/"))


def _html_visit_graphviz(self: Any, node: Any) -> None:
    """Sphinx's graphviz output, and for a ``backcare-fullsize`` diagram a link to its SVG at full size."""
    from sphinx.ext.graphviz import html_visit_graphviz, render_dot

    if "backcare-fullsize" in node.get("classes", []):
        fname, _ = render_dot(self, node["code"], node["options"], "svg", "graphviz", node.get("filename"))
        if fname is not None:
            self.body.append(f'<p class="backcare-fullsize-link"><a class="backcare-fullsize" '
                             f'href="{fname.as_posix()}">Open the diagram full size</a> (the text at reading size; '
                             'each arrow links to its rule)</p>\n')
    html_visit_graphviz(self, node)


# ---------------------------------------------------------------------------
# The API reference: documentation that lives next to what it documents


def _attr_docs(name: str, obj: Any) -> dict[tuple[str, str], list[str]]:
    """The ``#:`` comments about ``backcare.<name>`` (the object ``obj``), from the private module defining it."""
    import sys

    from sphinx.errors import PycodeError
    from sphinx.pycode import ModuleAnalyzer

    found: dict[tuple[str, str], list[str]] = {}
    # Every private module that holds the object, since others import it too; only the one that
    # defines it has the comments.
    for modname in sorted(m for m in sys.modules if m.startswith("backcare._")):
        if getattr(sys.modules[modname], name, None) is obj:
            try:
                docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
            except PycodeError:
                continue
            found.update((key, list(lines)) for key, lines in docs.items() if key[0] in ("", name))
    return found


def _api_docstrings(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Fill in what autodoc cannot find on its own.

    - A constant ``backcare.X`` imported from a private module has its ``#:``
      comment there, not in ``backcare/__init__.py``; autodoc would show
      ``str``'s own help instead.
    - Classes shown as ``backcare.X`` (the errors set ``__module__`` so) keep
      their fields' ``#:`` comments in their own module, and autodoc finds
      neither instance attributes declared by annotation only
      (``ProfileError.field``) nor their comments.
    - A :class:`~backcare.Profile` field is described by its field
      specification (the text validation errors and the schema use), not by
      a comment that could drift from it.
    """
    parts = name.split(".")
    if parts[0] != "backcare" or len(parts) not in (2, 3):
        return
    if what == "data" and len(parts) == 2:
        docs = _attr_docs(parts[1], obj).get(("", parts[1]))
        if docs:
            lines[:] = list(docs)
    elif what in ("class", "exception") and len(parts) == 2 and getattr(obj, "__module__", "") == "backcare":
        docs_by_attr = _attr_docs(parts[1], obj)
        for attr, annotation in getattr(obj, "__annotations__", {}).items():
            if (parts[1], attr) in docs_by_attr and not hasattr(obj, attr):
                lines += ["", f".. attribute:: {attr}", f"   :type: {annotation}", ""]
                lines += ["   " + line for line in docs_by_attr[(parts[1], attr)]]
    elif what == "attribute" and parts[1] == "Profile" and parts[2] in _profile.core_fields():
        spec = _profile.core_fields()[parts[2]]
        lines[:] = [spec.description, "", f"Accepts {spec.expected()}; ``None`` (the default) is not given."]
    elif what == "attribute" and not any(line.strip() for line in lines):
        docs = _attr_docs(parts[1], getattr(backcare, parts[1], None)).get((parts[1], parts[2]))
        if docs:
            lines[:] = list(docs)


#: Internal types that public signatures accept but callers never build.
_INTERNAL_IN_SIGNATURES = re.compile(r" \| ~?backcare\._[\w.]*\bPackText\b")


def _api_signatures(app: Sphinx, what: str, name: str, obj: Any, options: Any, signature: str | None,
                    return_annotation: str | None) -> tuple[str | None, str | None] | None:
    """Public signatures without internal types (a recommender pickles its packs as PackText)."""
    if not signature:
        return None
    return _INTERNAL_IN_SIGNATURES.sub("", signature), return_annotation


def setup(app: Sphinx) -> dict[str, Any]:
    from sphinx.ext.graphviz import graphviz

    app.setup_extension("sphinx.ext.graphviz")
    app.connect("builder-inited", _on_builder_inited)
    app.connect("doctree-read", _drop_workdir)
    app.connect("env-get-outdated", _reread_rule_pages)
    app.add_directive("backcare-command", BackcareCommand)
    app.add_directive("backcare-file", BackcareFile)
    app.add_directive("backcare-rule", RuleCard)
    app.add_object_type("rule", "rule", objname="backcare rule", indextemplate="pair: %s; rule")
    app.add_node(graphviz, override=True, html=(_html_visit_graphviz, None))
    app.add_post_transform(BreakableIds)
    app.connect("autodoc-process-docstring", _api_docstrings)
    app.connect("autodoc-process-signature", _api_signatures)
    for name in CLASS_ROLES:
        app.add_role(name, _class_role(name))
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
