"""Reading rule packs: TOML files in, a validated :class:`Rulebase` out.

Rule files are data. They are parsed with ``tomllib`` and nothing in them is
ever executed or imported. Every problem found is collected with its file,
line, entry (kind and id) and key, and reported together in one
:class:`RuleError`, sorted by file and line with knock-on problems folded into
their cause, so a rule author fixes a pack in one pass.

The work is done in stages, one module each:

``read``
    finding a pack's files and reading them (:class:`PackText`): regular
    files only, within a size cap;
``keys``
    the accepted keys, described once in :data:`SCHEMA`, which the parser
    checks files against, and ``backcare schema pack`` and the documentation
    render;
``parse``
    one file's tables into raw entries, checking each value's shape, after
    bounding its nesting and number sizes for the TOML parser;
``merge``
    packs merged in order: ids, ``replace``, ``disable`` and the protection
    of safety rules;
``checks``
    cross-references on the merged rulebase, conditions that can never
    hold, and the examples' profiles;
``limits``
    durable-rules' limits, refused before the engine sees a pack.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

from .._errors import Problem, RuleError, suggestion_budget
from .._model import PackInfo, Rulebase
from .checks import Cause, check_rulebase, effective_fields, validate
from .keys import (
    EXCLUDE_KEYS,
    EXPECT_KEYS,
    ID_RE,
    NAME_RE,
    REFER_KEYS,
    SCHEMA,
    THEN_KEYS,
    TOP_LEVEL,
    TOP_LEVEL_KEYS,
    URGENCY_KEYS,
    Key,
)
from .limits import (
    MAX_COMBINATIONS_PER_RULE,
    MAX_CONDITIONS_PER_RULE,
    MAX_FACT_NAMES,
    MAX_FIELDS,
    MAX_NESTING,
    MAX_NUMBER_DIGITS,
    MAX_RULES,
    MAX_SHARED_PATTERN,
    MAX_VALUE_TESTS_PER_FACT,
    MAX_WEIGHT,
)
from .merge import _dedupe, _merge
from .parse import _parse_text, _RawPack
from .read import (
    DEFAULT_MAX_PACK_BYTES,
    MAX_DIRECTORY_ENTRIES,
    MAX_PACK_BYTES_ENV,
    MAX_PACK_FILES,
    PackText,
    _read_pack,
    default_rules_path,
    pack_digest,
    pack_files,
)

__all__ = [
    "EXCLUDE_KEYS",
    "EXPECT_KEYS",
    "ID_RE",
    "NAME_RE",
    "REFER_KEYS",
    "THEN_KEYS",
    "TOP_LEVEL",
    "TOP_LEVEL_KEYS",
    "URGENCY_KEYS",
    "MAX_COMBINATIONS_PER_RULE",
    "MAX_CONDITIONS_PER_RULE",
    "MAX_FACT_NAMES",
    "MAX_FIELDS",
    "MAX_NESTING",
    "MAX_NUMBER_DIGITS",
    "MAX_RULES",
    "MAX_SHARED_PATTERN",
    "MAX_VALUE_TESTS_PER_FACT",
    "MAX_WEIGHT",
    "DEFAULT_MAX_PACK_BYTES",
    "MAX_DIRECTORY_ENTRIES",
    "MAX_PACK_BYTES_ENV",
    "MAX_PACK_FILES",
    "MAX_REPORTED_PROBLEMS",
    "SCHEMA",
    "Key",
    "PackText",
    "default_rules_path",
    "effective_fields",
    "load",
    "load_with_sources",
    "pack_digest",
    "pack_files",
    "validate",
]


#: Did-you-mean work allowed in one load, in candidate comparisons (about a
#: second's worth): a suggestion for each of a hundred typos among hundreds
#: of ids, and a bound for a pack of thousands of unknown ids among thousands.
SUGGESTION_BUDGET = 50_000
#: More problems than this at one line and key are folded into the first; more
#: than MAX_REPORTED_PROBLEMS in all are cut, with a count of the rest.
FOLD_AT = 10
MAX_REPORTED_PROBLEMS = 200


def load(
    packs: Sequence[Path | str | PackText],
    *,
    allow_safety_overrides: bool = False,
    max_pack_bytes: int | None = None,
) -> Rulebase:
    """Parse, merge and validate packs in order; raise one RuleError listing every problem.

    A pack is a path (a TOML file or a directory of them) or a :class:`PackText`.
    ``max_pack_bytes`` caps the size of each pack read from disk (default:
    the ``BACKCARE_MAX_PACK_BYTES`` environment variable, else 4 MiB), but
    the default pack's, which ships with backcare.
    """
    return load_with_sources(packs, allow_safety_overrides=allow_safety_overrides,
                             max_pack_bytes=max_pack_bytes)[0]


#: What provenance calls a pack without ``[pack] name`` (not its directory: the same pack
#: read from another directory must give the same provenance).
UNNAMED = "unnamed pack"
#: The default pack's name, which no other pack may take.
DEFAULT_PACK_NAME = "backcare-default"


def _is_default(path: Path, default: Path) -> bool:
    try:
        return path == default or path.resolve() == default.resolve()
    except OSError:
        return False


def load_with_sources(
    packs: Sequence[Path | str | PackText],
    *,
    allow_safety_overrides: bool = False,
    max_pack_bytes: int | None = None,
) -> tuple[Rulebase, tuple[PackText, ...]]:
    """:func:`load`, also returning the text of every pack exactly as it was parsed."""
    problems: list[Problem] = []
    raw_packs: list[_RawPack] = []
    sources: list[PackText] = []
    knock_ons: list[tuple[Problem, Cause]] = []
    defaults: list[bool] = []
    default = default_rules_path()
    with suggestion_budget(SUGGESTION_BUDGET):
        for item in packs:
            if isinstance(item, PackText):
                source: PackText | None = item
                if not item.files:
                    problems.append(Problem("no rule files in this in-memory pack", item.name, kind="input"))
            else:
                # The default pack ships with backcare: the cap is for the packs people bring.
                shipped = Path(item) == default
                source = _read_pack(Path(item), problems, sys.maxsize if shipped else max_pack_bytes)
            if source is None:
                continue
            sources.append(source)
            pack = _RawPack(source.name)
            for shown, text in source.files:
                _parse_text(text, shown, pack, problems)
            raw_packs.append(pack)
            defaults.append(not isinstance(item, PackText) and _is_default(Path(item), default))
        rulebase = _merge(raw_packs, problems, allow_safety_overrides)
        if rulebase is not None:
            infos = tuple(
                PackInfo(name=raw.meta.get("name") or UNNAMED, digest=pack_digest(text),
                         version=raw.meta.get("version"), description=raw.meta.get("description"),
                         default=is_default, source=text.name)
                for raw, text, is_default in zip(raw_packs, sources, defaults)
            )
            # In the order they were applied: a later pack can replace what an earlier one set.
            rulebase = attrs.evolve(rulebase, packs=infos)
            for info, raw in zip(infos, raw_packs):
                # Beside the default pack, a second "backcare-default" would pass for it in every result.
                if info.name == DEFAULT_PACK_NAME and not info.default and any(i.default for i in infos):
                    o = raw.meta_origin
                    problems.append(Problem(f"{DEFAULT_PACK_NAME!r} is the name of backcare's own rules: give "
                                            "this pack a name of its own", o.file if o else raw.name,
                                            o.line_of("name") if o else None, key="name", kind="pack"))
            broken = {k: None for p in raw_packs for k in p.broken}
            broken_facts = {f: c for p in raw_packs for f, c in p.broken_facts.items()}
            for problem, cause in check_rulebase(rulebase, broken, broken_facts):
                if cause is None:
                    problems.append(problem)
                else:
                    knock_ons.append((problem, cause))
    if problems or knock_ons:
        order = [shown for source in sources for shown, _ in source.files]
        raise RuleError(_report(problems, knock_ons, order))
    assert rulebase is not None
    return rulebase, tuple(sources)


def _report(problems: list[Problem], knock_ons: Iterable[tuple[Problem, Cause]], files: list[str]) -> list[Problem]:
    """The problems as a rule author should read them.

    A knock-on (a reference to an entry that failed on its own) is folded
    into that entry's problem; a flood of problems at one line and key (a
    long ``disable`` list of unknown ids) into its first; then they are
    sorted by file, in the order the files were read, and line, and cut at
    :data:`MAX_REPORTED_PROBLEMS` with a count of the rest.
    """
    problems = _dedupe(problems)
    follow: dict[Cause, int] = {}
    for problem, cause in knock_ons:
        if any(p.kind == cause[0] and p.rule_id == cause[1] for p in problems):
            follow[cause] = follow.get(cause, 0) + 1
        else:
            problems.append(problem)
    out: list[Problem] = []
    for p in problems:
        count = follow.pop((p.kind or "", p.rule_id or ""), 0)
        if count:
            p = attrs.evolve(p, message=p.message + f" ({count} more problem{'s' if count > 1 else ''} "
                             "elsewhere follow from this one)")
        out.append(p)
    at: dict[tuple[str | None, int | None, str | None], list[Problem]] = {}
    for p in out:
        at.setdefault((p.file, p.line, p.key), []).append(p)
    folded = []
    for p in out:
        group = at[(p.file, p.line, p.key)]
        if len(group) <= FOLD_AT:
            folded.append(p)
        elif p is group[0]:
            folded.append(attrs.evolve(p, message=p.message + f" (and {len(group) - 1:,} more problems at this "
                                       "line and key, not listed)"))
    # Files in the order they were read, then any others (a pack that could
    # not be read) as first met, then problems with no file.
    rank = {name: i for i, name in reversed(list(enumerate(files)))}
    for p in folded:
        if p.file is not None:
            rank.setdefault(p.file, len(files) + len(rank))

    def key(p: Problem) -> tuple[int, int]:
        return (rank[p.file] if p.file is not None else len(rank) + len(files), p.line or 0)

    ordered = sorted(folded, key=key)
    if len(ordered) > MAX_REPORTED_PROBLEMS:
        rest = len(ordered) - MAX_REPORTED_PROBLEMS
        ordered = ordered[:MAX_REPORTED_PROBLEMS] + [Problem(f"{rest:,} more problems not listed: fix these first")]
    return ordered
