"""The one place backcare imports durable-rules, so a broken build fails with the fix named.

durable-rules 2.0.28's C core calls ``PyEval_CallObject``, which Python 3.13
removed. Built as is on 3.13, it installs without complaint and then fails on
import with "undefined symbol: PyEval_CallObject", which says nothing about
what to do. Built with the old name mapped to its replacement (``CPPFLAGS``,
which the package's setup.py leaves alone, unlike ``CFLAGS``), it works.

It also replaces durable-rules' clock helper, which calls
``datetime.utcfromtimestamp``: deprecated since Python 3.12 and due to be
removed. It runs on every rule firing, so on 3.12 and later each
recommendation warned, and an application running with warnings as errors
(as test suites often do) got an :class:`~backcare.EngineError` instead of a
result. The replacement computes the same value without the deprecated call;
it is set on ``durable.engine`` itself, so other users of durable-rules in the
process get it too, and see no difference but the missing warning.

The import error stays an :class:`ImportError`: it is raised by ``import backcare``,
before any backcare exception class can be caught by name, and code that
treats backcare as optional catches ``ImportError``.
"""

from __future__ import annotations

import datetime
import sys

#: What pip needs in the environment to build durable-rules for Python 3.13 and later.
CPPFLAGS_FIX = "-DPyEval_CallObject=PyObject_CallObject"


def _rebuild_command() -> str:
    try:
        from importlib.metadata import version

        requirement = f"durable-rules=={version('durable-rules')}"
    except Exception:  # metadata missing or unreadable: the message must still come out
        requirement = "durable-rules"
    return (
        f"CPPFLAGS={CPPFLAGS_FIX} {sys.executable} -m pip install"
        f" --force-reinstall --no-deps --no-cache-dir {requirement}"
    )


try:
    from durable import engine
except ImportError as exc:
    if "PyEval_CallObject" not in str(exc):
        raise
    raise ImportError(
        "backcare cannot load durable-rules: its C core was compiled without the fix Python "
        f"{sys.version_info[0]}.{sys.version_info[1]} needs (it calls PyEval_CallObject, removed in "
        f"Python 3.13). Rebuild it, bypassing pip's cache of the broken build:\n"
        f"    {_rebuild_command()}",
        name=exc.name,
        path=exc.path,
    ) from None

_EPOCH = datetime.datetime(1970, 1, 1)  # what utcfromtimestamp(0) returns: naive, UTC


def _unix_now() -> float:
    """durable-rules' ``engine._unix_now``, same value, without ``utcfromtimestamp``."""
    return (datetime.datetime.now() - _EPOCH).total_seconds()


if hasattr(engine, "_unix_now"):
    engine._unix_now = _unix_now

__all__ = ["CPPFLAGS_FIX", "engine"]
