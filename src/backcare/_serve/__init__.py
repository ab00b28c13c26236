"""backcare as a service: a CDS Hooks endpoint, a JSON API and an intake page (the ``serve`` extra).

Private: the public way in is ``backcare serve`` (see :mod:`backcare._cli`),
or :func:`create_app` for an ASGI server of your own. Everything here is a
thin layer over :class:`~backcare.Recommender`; no reasoning lives in it.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._recommender import Recommender
from .app import DEFAULT_MAX_BODY, create_app

__all__ = ["DEFAULT_MAX_BODY", "create_app", "run"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def run(
    rules: Sequence[str] = (),
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    allow_safety_overrides: bool = False,
    max_body: int = DEFAULT_MAX_BODY,
    access_log: bool = False,
) -> None:
    """Serve until interrupted. Binds loopback unless ``host`` says otherwise.

    The access log (method, path and status; never a body) is off unless
    asked for, so by default nothing about a request is written anywhere.
    """
    import uvicorn

    rec = Recommender(list(rules), allow_safety_overrides=allow_safety_overrides)
    app = create_app(rec, max_body=max_body)
    uvicorn.run(app, host=host, port=port, access_log=access_log, server_header=False,
                proxy_headers=False, log_level="info")
