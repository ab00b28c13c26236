"""The ASGI application: routes, limits and headers around one :class:`~backcare.Recommender`.

Every answer comes from the recommender the app was built with, so packs,
safety overrides and ranking behave exactly as they do in Python. Requests
are read whole only up to ``max_body`` bytes; nothing about a request's
content is logged or kept (no sessions, no cookies, ``Cache-Control:
no-store``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from .._errors import EngineError, ProfileError
from .._profile import MAX_TEXT
from .._recommender import Recommender
from .._result import DISCLAIMER
from .._schema import profile_schema, result_schema
from . import cds, page
from .fhir import CodeMap, FHIRError

#: Default cap on a request body: a CDS Hooks prefetch of a long record fits; a runaway upload does not.
DEFAULT_MAX_BODY = 1_048_576
#: Most form fields a page submission may carry (every checkbox of a long catalogue included).
MAX_FORM_FIELDS = 2000

Today = Callable[[], dt.date]


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def create_app(
    recommender: Recommender | None = None,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    today: Today = _utc_today,
) -> ASGIApp:
    """The service for ``recommender`` (by default one over the default rules).

    ``today`` gives the date ages and episode lengths are counted to; tests
    and the documentation fix it so their output does not change with the
    calendar.
    """
    if not isinstance(max_body, int) or isinstance(max_body, bool) or max_body < 1024:
        raise ValueError(f"max_body must be an integer >= 1024, got {max_body!r}")
    rec = recommender if recommender is not None else Recommender()
    codes = CodeMap.load(rec.fields)
    env = page.environment()
    fields = page.form_fields(rec)
    css = resources.files("backcare._serve").joinpath("static/serve.css").read_bytes()
    cited_by: dict[str, list[str]] = {}
    for rule in rec.rulebase.rules:
        cited_by.setdefault(rule.source, []).append(rule.id)
        if rule.caveat_source:
            cited_by.setdefault(rule.caveat_source, []).append(rule.id)

    async def body_of(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_body):
            raise HTTPException(413, f"the request body is larger than this service accepts ({max_body} bytes)")
        chunks = bytearray()
        async for chunk in request.stream():
            chunks += chunk
            if len(chunks) > max_body:
                raise HTTPException(413, f"the request body is larger than this service accepts ({max_body} bytes)")
        return bytes(chunks)

    async def json_of(request: Request) -> Any:
        raw = await body_of(request)
        try:
            return json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise HTTPException(400, "the request body is not UTF-8 text") from exc
        except json.JSONDecodeError as exc:
            raise HTTPException(400, f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from exc

    def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        root = str(request.url_for("page").path)
        html = env.get_template(template).render(
            root=root if root.endswith("/") else root + "/",
            static_url=request.url_for("css").path,
            version=__version__,
            disclaimer=DISCLAIMER,
            not_a_device=cds.NOT_A_DEVICE,
            red_flags=rec.rulebase.red_flags,
            max_text=MAX_TEXT,
            checked=page.checked,
            shown=page.shown,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def page_response(request: Request, state: page.PageState, status: int = 200) -> HTMLResponse:
        result = state.result
        explanation = result.explain() if result is not None else ""
        # Why not, for every technique not recommended; what if, from the rules' own conditions.
        shown = set(result.technique_ids()) if result is not None else set()
        why_not = [result.why_not(t) for t in rec.rulebase.techniques if t not in shown] if result else []
        what_if = list(result.what_if()) if result is not None else []
        return render(request, "page.html", status, fields=fields, state=state, explanation=explanation,
                      why_not=why_not, what_if=what_if)

    async def get_page(request: Request) -> Response:
        return page_response(request, page.PageState())

    async def post_page(request: Request) -> Response:
        raw = await body_of(request)
        try:
            items = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                              max_num_fields=MAX_FORM_FIELDS)
        except (UnicodeDecodeError, ValueError) as exc:
            raise HTTPException(400, f"the form data could not be read: {exc}") from exc
        values, errors = page.read_form(items, rec)
        if errors:
            return page_response(request, page.PageState(values, errors), 422)
        try:
            result = rec.recommend(values)
        except ProfileError as exc:
            field = exc.field.split("[")[0] if exc.field else None
            if field is not None and field in rec.fields:
                return page_response(request, page.PageState(values, {field: str(exc)}), 422)
            return page_response(request, page.PageState(values, general_errors=(str(exc),)), 422)
        return page_response(request, page.PageState(values, result=result))

    async def sources(request: Request) -> Response:
        return render(request, "sources.html", sources=list(rec.rulebase.sources.values()), cited_by=cited_by)

    async def css_file(request: Request) -> Response:
        return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=3600"})

    async def recommend(request: Request) -> Response:
        data = await json_of(request)
        result = rec.recommend(data)
        # Exactly what `backcare recommend --json` prints, newline included.
        return Response(result.to_json() + "\n", media_type="application/json")

    async def schema_profile(request: Request) -> Response:
        return JSONResponse(profile_schema(rec.fields))

    async def schema_result(request: Request) -> Response:
        return JSONResponse(result_schema())

    async def rules(request: Request) -> Response:
        sources_ = rec.rulebase.sources
        return JSONResponse({
            "rules": [
                {
                    "id": r.id, "title": r.title, "safety": r.safety, "evidence": r.evidence,
                    "when": [c.describe() for c in r.when], "then": r.then.describe(), "because": r.because,
                    "source": r.source,
                    "citation": sources_[r.source].citation if r.source in sources_ else None,
                }
                for r in rec.rulebase.rules
            ],
            "safety_overrides": list(rec.rulebase.safety_overrides),
        })

    async def discovery(request: Request) -> Response:
        return JSONResponse(cds.discovery(codes))

    async def service(request: Request) -> Response:
        body = await json_of(request)
        try:
            response, _, _ = cds.answer(body, rec, codes, today(), str(request.base_url))
        except cds.PreconditionFailed as exc:
            return JSONResponse({"error": str(exc)}, status_code=412)
        except FHIRError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(response)

    async def profile_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProfileError)
        return JSONResponse({"error": str(exc), "field": exc.field}, status_code=422)

    async def engine_error(request: Request, exc: Exception) -> Response:
        # The engine's fault, not the request's: say so without echoing the profile.
        return JSONResponse({"error": "the rules engine failed on this request; nothing was recommended"},
                            status_code=500)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if request.url.path.rstrip("/") == str(request.url_for("page").path).rstrip("/") \
                and request.method == "POST" and exc.status_code in (400, 413):
            state = page.PageState(general_errors=(str(exc.detail),))
            return page_response(request, state, exc.status_code)
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    routes = [
        Route("/", get_page, methods=["GET"], name="page"),
        Route("/", post_page, methods=["POST"], name="page_post"),
        Route("/sources", sources, methods=["GET"], name="sources"),
        Route("/static/serve.css", css_file, methods=["GET"], name="css"),
        Route("/recommend", recommend, methods=["POST"], name="recommend"),
        Route("/schema/profile", schema_profile, methods=["GET"], name="schema_profile"),
        Route("/schema/result", schema_result, methods=["GET"], name="schema_result"),
        Route("/rules", rules, methods=["GET"], name="rules"),
        Route("/cds-services", discovery, methods=["GET"], name="discovery"),
        Route(f"/cds-services/{cds.SERVICE_ID}", service, methods=["POST"], name="service"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={ProfileError: profile_error, EngineError: engine_error, HTTPException: http_error},
    )
    return _SecurityHeaders(app)


class _SecurityHeaders:
    """Headers every answer carries: no caching, no framing, no scripts, no sniffing."""

    HEADERS: Sequence[tuple[bytes, bytes]] = (
        (b"cache-control", b"no-store"),
        (b"content-security-policy",
         b"default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self.HEADERS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
