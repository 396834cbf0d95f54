"""FastAPI application: ``GET /`` page, ``POST /`` form, ``POST /api/analyze``, ``/api/schema``, ``/healthz``, ``/docs``."""
from __future__ import annotations

import json
import threading
from importlib.resources import files
from typing import Optional
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ReportNLPError
from ..schema import Exam, Result
from .render import EXAM_FORM, exam_from_form, highlight

MAX_BODY = 256 * 1024
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HERE = files("report_nlp.web")
# One analysis at a time per process: threads would share one core through the GIL (every request in
# flight slowed alike, switching costs on top); queued one by one, each finishes at full speed and the
# latency tail is shorter. Processes (``--workers``) give the parallelism.
ANALYSIS_LOCK = threading.Lock()


class AnalyzeRequest(BaseModel):
    """Body of POST /api/analyze."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=MAX_BODY)
    exam: Optional[Exam] = None
    concepts: Optional[list[str]] = Field(default=None, max_length=50)


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes never reaches the app, whether it announces its
    length or streams in chunks; the caller's ``too_large(path)`` answers it (413)."""

    def __init__(self, app, limit: int, too_large):
        self.app, self.limit, self.too_large = app, limit, too_large

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            return await self.too_large(scope["path"])(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                return await self.too_large(scope["path"])(scope, receive, send)
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


class SecurityHeaders:
    """ASGI middleware: CSP, nosniff, no referrer and no caching on every response. Plain ASGI rather
    than ``@app.middleware("http")`` (Starlette's BaseHTTPMiddleware), which costs each request a task
    and a streamed copy of the response."""

    HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
               "Cache-Control": "no-store"}

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.HEADERS.items():
                    headers[name] = value
            await send(message)

        return await self.app(scope, receive, send_with_headers)


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(HERE.joinpath("templates"))), autoescape=select_autoescape(["html"]))
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2)
    return env


def create_app() -> FastAPI:
    app = FastAPI(title="report_nlp", version="0.1.0", docs_url=None, redoc_url=None,
                  description="Spine MRI report NLP: findings, imaging-exam concordance, guideline recommendation.")
    env = _env()
    app.mount("/static", StaticFiles(directory=str(HERE.joinpath("static"))), name="static")

    app.add_middleware(SecurityHeaders)

    def _too_large(path: str) -> Response:
        message = f"The report is too large: the limit is {MAX_BODY // 1024} kB per request."
        if path.startswith("/api/"):
            resp = JSONResponse({"detail": message}, status_code=413)
        else:
            resp = HTMLResponse(env.get_template("index.html").render(text="", result=None, error=message, form=EXAM_FORM,
                                                                      exam_values={}), status_code=413)
        resp.headers["Content-Security-Policy"] = CSP
        return resp

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.url.path.startswith("/api/") and media != "application/json" and not media.endswith("+json"):
            # FastAPI parses a body as JSON only when it is labelled so, and otherwise reports "a valid
            # dictionary" at field "": say what is wrong instead
            given = f"not {media[:60]}" if media else "and the request has no Content-Type"
            return JSONResponse({"detail": f"the body must be JSON (Content-Type: application/json), {given}"},
                                status_code=415)
        problems = []
        for e in exc.errors():
            if e["type"] == "json_invalid":  # loc is (body, character): name the body and say where
                reason = (e.get("ctx") or {}).get("error") or e["msg"]
                problems.append({"field": "body", "message": f"not valid JSON: {reason} (character {e['loc'][-1]})"})
                continue
            problems.append({"field": ".".join(str(x) for x in e["loc"] if x != "body") or "body", "message": e["msg"]})
        return JSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400 and request.url.path.startswith("/api/"):
            # FastAPI's answer to a body its JSON parser cannot even start on (not UTF-8, nested too deeply):
            # malformed JSON, answered like the rest
            return JSONResponse({"detail": [{"field": "body", "message": "not valid JSON: the body could not be parsed "
                                             "(not UTF-8 text, or nested too deeply)"}]}, status_code=422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(ReportNLPError)
    async def rejected(request: Request, exc: ReportNLPError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return env.get_template("index.html").render(text="", result=None, error=None, form=EXAM_FORM, exam_values={})

    @app.post("/", response_class=HTMLResponse, include_in_schema=False)
    async def page_analyze(request: Request):
        body = await request.body()  # at most MAX_BODY: BodyLimit answered anything larger
        fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        text = (fields.get("text") or [""])[0]
        error = None
        result = None
        try:
            exam = exam_from_form(fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            error = f"Exam field {'.'.join(str(x) for x in first['loc'])}: {first['msg']}"
            exam = None
        if error is None:
            from .. import analyze

            def locked():
                with ANALYSIS_LOCK:
                    return analyze(text, exam=exam)

            try:
                result = await run_in_threadpool(locked)  # the event loop keeps answering meanwhile
            except ReportNLPError as exc:
                error = str(exc)
        status = 200 if error is None else 422
        html = env.get_template("index.html").render(
            text=text, result=result, error=error, form=EXAM_FORM, exam_values=fields,
            segments=highlight(text, result.findings) if result else [],
            result_json=result.model_dump_json(indent=2) if result else "",
        )
        return HTMLResponse(html, status_code=status)

    @app.post("/api/analyze", summary="Analyse one report",
              responses={200: {"model": Result, "description": "The Result contract"}})
    def api_analyze(request: AnalyzeRequest) -> Response:
        """Findings, concordance with the exam and the guideline recommendation (the Result contract).

        A plain ``def``: the analysis is CPU work, so it runs in the server's thread pool and the event
        loop keeps answering; the Result is serialised once by pydantic (no second validation).
        """
        from .. import analyze

        with ANALYSIS_LOCK:
            result = analyze(request.text, exam=request.exam, concepts=request.concepts)
        return Response(result.model_dump_json(), media_type="application/json")

    @app.get("/api/schema", summary="JSON Schema of the Result contract")
    async def api_schema():
        return Result.model_json_schema()

    @app.get("/healthz", summary="Liveness")
    async def healthz():
        return {"status": "ok"}

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs():
        spec = app.openapi()
        return env.get_template("docs.html").render(spec=spec, spec_json=json.dumps(spec, indent=2))

    app.add_middleware(BodyLimit, limit=MAX_BODY, too_large=_too_large)
    return app
