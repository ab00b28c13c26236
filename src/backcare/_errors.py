"""One exception hierarchy for everything backcare raises on purpose.

Callers catch :class:`BackcareError` to handle any of them; the subclasses
say whose mistake it was (the profile's, a rule file's, or the engine's), so
an application can show the first two to its user and log the third.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
from collections.abc import Iterable, Iterator, Sequence

import attrs

from ._text import quote


class BackcareError(Exception):
    """Base class of every error backcare raises deliberately."""


class ProfileError(BackcareError, ValueError):
    """A symptom profile is malformed: unknown key, wrong type or out of range.

    A ``ValueError`` so that code validating form input with ``except
    ValueError`` keeps working. ``field`` names the offending field (dotted for
    list items, e.g. ``red_flags[1]``).
    """

    #: The field the message is about (``red_flags[1]`` for a list item), or ``None``.
    field: str | None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@attrs.frozen
class Problem:
    """One thing wrong with a rule pack, located as precisely as we can.

    ``rule_id`` is the id (or name) of the entry the problem is about and
    ``kind`` what sort of entry that is: ``rule``, ``field``, ``technique``,
    ``source``, ``red_flag``, ``contraindication``, ``example``, ``pack`` or
    ``urgency``; ``file`` for a file that is not valid TOML, and ``input``
    for a pack or file that was refused unread (missing, not a regular file,
    too large, not UTF-8, nested too deep).
    """

    #: What is wrong and what was expected, with a did-you-mean where one helps.
    message: str
    #: The file it is in, if known.
    file: str | None = None
    #: The line, if known.
    line: int | None = None
    #: The id (or name) of the entry it is about.
    rule_id: str | None = None
    #: The key it is about, dotted for nested keys (``when.pain_weeks``).
    key: str | None = None
    #: What sort of entry: ``rule``, ``field``, ``technique``, ``source``, ``example``, ... (see above).
    kind: str | None = None

    def __str__(self) -> str:
        where = self.file or "<rules>"
        if self.line is not None:
            where += f":{self.line}"
        parts = [where]
        if self.rule_id:
            parts.append(f"{(self.kind or 'rule').replace('_', ' ')} {quote(self.rule_id)}")
        if self.key:
            parts.append(f"key {quote(self.key)}")
        return ": ".join(parts) + f": {self.message}"


class RuleError(BackcareError):
    """A rule pack cannot be loaded.

    All problems found in one load are collected in :attr:`problems`, so a rule
    author fixes them in one pass instead of one per run.
    """

    #: Every problem found in the load, sorted by file and line.
    problems: tuple[Problem, ...]

    def __init__(self, problems: Sequence[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            text = str(self.problems[0])
        else:
            text = f"{len(self.problems)} problems in rule pack:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(text)


class EngineError(BackcareError):
    """The rules engine failed while evaluating a profile.

    Raised instead of returning a partial result: a recommendation with rules
    silently missing would be worse than none.
    """


class UnknownIdError(BackcareError, LookupError):
    """An id (of a technique, a rule, ...) that the rules in use do not define.

    The message names the closest known id where there is one.
    """


# Shown as ``backcare.ProfileError`` in tracebacks: the public name, not this module.
for _cls in (BackcareError, ProfileError, Problem, RuleError, EngineError, UnknownIdError):
    _cls.__module__ = "backcare"


#: Suggestions are for typos: a word this long is no typo of an id or a name.
MAX_SUGGESTED_WORD = 100

_budget: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("suggestion_budget", default=None)


@contextlib.contextmanager
def suggestion_budget(comparisons: int) -> Iterator[None]:
    """Bound the did-you-mean work inside the block to ``comparisons`` candidate comparisons.

    A pack with thousands of unknown ids beside thousands of rules would
    otherwise spend minutes on suggestions; past the budget, problems are
    still reported, only without a suggestion. The budget is spent in the
    order problems are found, so which ones get a suggestion is deterministic.
    """
    token = _budget.set([comparisons])
    try:
        yield
    finally:
        _budget.reset(token)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest candidate, or ``""``."""
    if not isinstance(word, str) or len(word) > MAX_SUGGESTED_WORD:
        return ""
    budget = _budget.get()
    if budget is not None and budget[0] <= 0:
        return ""
    pool = sorted({c for c in candidates if isinstance(c, str)})
    if budget is not None:
        if budget[0] < len(pool):
            budget[0] = 0
            return ""
        budget[0] -= len(pool)
    same_but_case = [c for c in pool if c.casefold() == word.casefold()]
    if same_but_case:
        return f" (did you mean {same_but_case[0]!r}?)"
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""
