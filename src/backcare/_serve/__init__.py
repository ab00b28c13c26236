"""backcare as a service: a CDS Hooks endpoint, a JSON API and an intake page (the ``serve`` extra).

Private: the public way in is ``backcare serve`` (see :mod:`backcare._cli`),
or :func:`create_app` for an ASGI server of your own. Everything here is a
thin layer over :class:`~backcare.Recommender`; no reasoning lives in it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .._recommender import Recommender
from .app import DEFAULT_MAX_BODY, create_app

if TYPE_CHECKING:
    import uvicorn

__all__ = ["DEFAULT_MAX_BODY", "create_app", "server"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def server(
    recommender: Recommender,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    max_body: int = DEFAULT_MAX_BODY,
    access_log: bool = False,
) -> uvicorn.Server:
    """A uvicorn server for ``recommender``, not yet started (``.run()`` serves)."""
    import uvicorn

    config = uvicorn.Config(create_app(recommender, max_body=max_body), host=host, port=port,
                            access_log=access_log, server_header=False, proxy_headers=False,
                            log_level="info", lifespan="off")
    # uvicorn writes access lines whenever its access logger has a handler, whoever attached it
    # (an embedding application, a test runner): without --access-log, none is written at all.
    logging.getLogger("uvicorn.access").disabled = not access_log
    return uvicorn.Server(config)
