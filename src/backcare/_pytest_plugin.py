"""A pytest plugin: the ``[[example]]`` tables of rule packs, run as pytest tests.

A clinic that keeps its rule pack next to its own code runs the pack's
examples inside its own test suite: each example is one test item, named
after the example, which fails with what was expected, what the result
was, and which rules fired. The plugin is installed with backcare (entry
point ``pytest11``) but does nothing unless asked, by the command-line
option or the ini setting::

    pytest --backcare-pack rules/clinic

    # pytest.ini (or [tool.pytest.ini_options] in pyproject.toml)
    [pytest]
    backcare_packs = rules/clinic

The packs are loaded on top of the default rules, once per session, exactly
as ``backcare rules test`` loads them; ``backcare_no_default`` and
``backcare_allow_safety_overrides`` (ini, true or false) do what the
command's ``--no-default`` and ``--allow-safety-overrides`` do. A pack that
does not load gives one failing item with every problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._errors import RuleError
from ._model import Example

_STATE = pytest.StashKey[dict[str, Any]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("backcare", "backcare rule pack examples")
    group.addoption("--backcare-pack", action="append", default=[], metavar="PATH", dest="backcare_packs",
                    help="run the [[example]]s of this rule pack (a .toml file or a directory) as tests; repeatable")
    parser.addini("backcare_packs", type="paths", default=[],
                  help="rule packs whose [[example]]s run as tests (paths relative to this file)")
    parser.addini("backcare_no_default", type="bool", default=False,
                  help="load only the packs named, not backcare's default rules first")
    parser.addini("backcare_allow_safety_overrides", type="bool", default=False,
                  help="let the packs disable or replace safety rules")


def _packs(config: pytest.Config) -> list[Path]:
    named = [Path(p) for p in config.getoption("backcare_packs") or []]
    named += [Path(p) for p in config.getini("backcare_packs")]
    seen: list[Path] = []
    for path in named:
        if path.resolve() not in [p.resolve() for p in seen]:
            seen.append(path)
    return seen


class ExampleFailed(Exception):
    """An example whose result did not show what it expects."""


class ExampleItem(pytest.Item):
    """One ``[[example]]`` of a rule pack."""

    def __init__(self, *, example: Example, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.example = example
        # In --junitxml too: a passing example run over a pack that switched safety off says so.
        for note in self.config.stash[_STATE]["recommender"].rulebase.safety_overrides:
            self.user_properties.append(("backcare_safety_override", note))

    def runtest(self) -> None:
        from ._ruletest import run_example

        outcome = run_example(self.config.stash[_STATE]["recommender"], self.example)
        if not outcome.passed:
            raise ExampleFailed(outcome.describe())

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, (ExampleFailed, RuleError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        line = self.example.origin.line if self.example.origin else None
        return self.path, (line - 1 if line else None), f"backcare example: {self.name}"


class PackProblem(Exception):
    """A pack under test that did not load, or holds no example."""


class PackItem(pytest.Item):
    """Stands for a pack that cannot be tested: fails with the reason (every problem the loader found)."""

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def runtest(self) -> None:
        raise PackProblem(self.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        return str(excinfo.value)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, "backcare rule pack"


class PackFile(pytest.File):
    """A rule file of a pack under test: its examples are its items."""

    def collect(self) -> Iterator[pytest.Item]:
        examples: list[Example] = self.config.stash[_STATE]["files"].get(self.path, [])
        for example in examples:
            yield ExampleItem.from_parent(self, name=example.name, example=example)


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect items
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    packs = _packs(config)
    if not packs:
        return
    from ._recommender import Recommender
    from ._ruletest import read_packs, same_pack

    state: dict[str, Any] = {"files": {}}
    config.stash[_STATE] = state
    include_default = not config.getini("backcare_no_default")
    try:
        extra, names = read_packs(packs, include_default=include_default)
        recommender = Recommender(extra, include_default=include_default,
                                  allow_safety_overrides=config.getini("backcare_allow_safety_overrides"),
                                  cache_size=0)
    except RuleError as exc:
        for pack in packs:
            holder = PackFile.from_parent(session, path=pack.resolve())
            items.append(PackItem.from_parent(holder, name="load", message=str(exc)))
        return
    state["recommender"] = recommender
    files: dict[Path, list[Example]] = state["files"]
    found = {name: 0 for name in names}
    for example in recommender.rulebase.examples:
        origin = example.origin
        owner = next((n for n in names if origin and origin.pack and same_pack(origin.pack, n)), None)
        if origin is None or owner is None:
            continue
        found[owner] += 1
        files.setdefault(Path(origin.file).resolve(), []).append(example)
    for path in sorted(files):
        items.extend(PackFile.from_parent(session, path=path).collect())
    for name, count in found.items():
        if not count:  # a pack under test that tests nothing must not pass silently
            holder = PackFile.from_parent(session, path=Path(name).resolve())
            items.append(PackItem.from_parent(holder, name="examples", message=f"{name}: no [[example]] in this "
                                              "rule pack, so nothing of it is tested"))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Name every safety override the packs under test made, whatever the outcome."""
    state = config.stash.get(_STATE, None)
    recommender = state.get("recommender") if state else None
    overrides = recommender.rulebase.safety_overrides if recommender is not None else ()
    if overrides:
        terminalreporter.section("backcare safety overrides", yellow=True)
        for note in overrides:
            terminalreporter.line(f"warning: {note}")
