"""Reading rule packs: TOML files in, a validated :class:`Rulebase` out.

Rule files are data. They are parsed with ``tomllib`` and nothing in them is
ever executed or imported. Every problem found is collected with its file,
line, rule id and key, and reported together in one :class:`RuleError`, so a
rule author fixes a pack in one pass.

The work is done in stages, one module each:

``read``
    finding a pack's files and reading them (:class:`PackText`);
``keys``
    the accepted keys, described once in :data:`SCHEMA`, which the parser
    checks files against and the documentation renders;
``parse``
    one file's tables into raw entries, checking each value's shape;
``merge``
    packs merged in order: ids, ``replace``, ``disable`` and the protection
    of safety rules;
``checks``
    cross-references on the merged rulebase;
``limits``
    durable-rules' limits, refused before the engine sees a pack.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import attrs

from .._errors import Problem, RuleError
from .._model import PackInfo, Rulebase
from .checks import validate
from .keys import EXCLUDE_KEYS, EXPECT_KEYS, ID_RE, NAME_RE, REFER_KEYS, SCHEMA, THEN_KEYS, TOP_LEVEL, Key
from .limits import (
    MAX_COMBINATIONS_PER_RULE,
    MAX_CONDITIONS_PER_RULE,
    MAX_FACT_NAMES,
    MAX_FIELDS,
    MAX_RULES,
    MAX_SHARED_PATTERN,
    MAX_VALUE_TESTS_PER_FACT,
)
from .merge import _dedupe, _merge
from .parse import _parse_text, _RawPack
from .read import PackText, _read_pack, default_rules_path, pack_digest, pack_files


def _is_default(path: Path) -> bool:
    try:
        return path.resolve() == default_rules_path().resolve()
    except (OSError, RuleError):
        return False

__all__ = [
    "EXCLUDE_KEYS",
    "EXPECT_KEYS",
    "ID_RE",
    "NAME_RE",
    "REFER_KEYS",
    "THEN_KEYS",
    "TOP_LEVEL",
    "MAX_COMBINATIONS_PER_RULE",
    "MAX_CONDITIONS_PER_RULE",
    "MAX_FACT_NAMES",
    "MAX_FIELDS",
    "MAX_RULES",
    "MAX_SHARED_PATTERN",
    "MAX_VALUE_TESTS_PER_FACT",
    "SCHEMA",
    "Key",
    "PackText",
    "default_rules_path",
    "load",
    "load_with_sources",
    "pack_digest",
    "pack_files",
    "validate",
]


def load(packs: Sequence[Path | str | PackText], *, allow_safety_overrides: bool = False) -> Rulebase:
    """Parse, merge and validate packs in order; raise one RuleError listing every problem.

    A pack is a path (a TOML file or a directory of them) or a :class:`PackText`.
    """
    return load_with_sources(packs, allow_safety_overrides=allow_safety_overrides)[0]


def load_with_sources(
    packs: Sequence[Path | str | PackText], *, allow_safety_overrides: bool = False
) -> tuple[Rulebase, tuple[PackText, ...]]:
    """:func:`load`, also returning the text of every pack exactly as it was parsed."""
    problems: list[Problem] = []
    raw_packs: list[_RawPack] = []
    sources: list[PackText] = []
    defaults: list[bool] = []
    for item in packs:
        if isinstance(item, PackText):
            source: PackText | None = item
            if not item.files:
                problems.append(Problem("no rule files in this in-memory pack", item.name))
        else:
            source = _read_pack(Path(item), problems)
        if source is None:
            continue
        sources.append(source)
        pack = _RawPack(source.name)
        for shown, text in source.files:
            _parse_text(text, shown, pack, problems)
        raw_packs.append(pack)
        defaults.append(not isinstance(item, PackText) and _is_default(Path(item)))
    rulebase = _merge(raw_packs, problems, allow_safety_overrides)
    if rulebase is not None:
        infos = tuple(
            PackInfo(name=raw.meta.get("name") or Path(text.name).name, digest=pack_digest(text),
                     version=raw.meta.get("version"), description=raw.meta.get("description"), default=default)
            for raw, text, default in zip(raw_packs, sources, defaults)
        )
        # The default pack first, then the others sorted: packs that load in either order give
        # the same rules, and so the same provenance (order-dependent changes are listed in
        # safety_overrides, and a ranking a pack sets shows in the result's ranking).
        infos = tuple(sorted(infos, key=lambda i: (not i.default, i.name, i.digest)))
        rulebase = attrs.evolve(rulebase, packs=infos)
        problems += validate(rulebase)
    if problems:
        raise RuleError(_dedupe(problems))
    assert rulebase is not None
    return rulebase, tuple(sources)

