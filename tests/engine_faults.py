"""Make every rule action fail, to test what the engine does with an exception raised inside one."""

from __future__ import annotations

from typing import Any

import pytest

from backcare import _engine


def break_actions(monkeypatch: pytest.MonkeyPatch, error: BaseException, after: int = 0) -> None:
    """From now on, the first thing a rule action does (record its firing) raises ``error``, once ``after``
    actions (counted over every call) have run normally."""
    done = [0]

    class Exploding(set):  # type: ignore[type-arg]
        def add(self, firing: Any) -> None:
            done[0] += 1
            if done[0] > after:
                raise error
            super().add(firing)

    class BrokenRun(_engine._Run):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.firings = Exploding()  # type: ignore[assignment]

    monkeypatch.setattr(_engine, "_Run", BrokenRun)
