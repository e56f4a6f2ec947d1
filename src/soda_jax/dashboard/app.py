"""The dashboard's Starlette application: HTML pages (Jinja2) and the JSON API they poll.

Every path parameter goes through `PrefixPaths` (anything outside the prefix is a 404); every
file through `load_json`/`previews` (a malformed file is an error on its item); any other
exception is a short 500 page, never a dropped connection.
The one page that writes is ``/play`` (`soda_jax.dashboard.play`): its results, under ``{prefix}/play/``.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import urllib.parse
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from soda_jax import fileio
from soda_jax.dashboard import previews, views
from soda_jax.dashboard.metrics import CurveCache
from soda_jax.dashboard.paths import OutsidePrefix
from soda_jax.dashboard.play import Playground
from soda_jax.dashboard.store import PrefixStore

logger = logging.getLogger(__name__)

PACKAGE = files("soda_jax.dashboard")
POLL_S = 5
"""How often open pages ask for new status and metrics."""
MAX_RAW_BYTES = 512 * 1024 * 1024
"""Largest file served from an object store in one response."""
RAW_HEADERS = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}
"""Raw output files are data, never active content of this origin (an SVG or HTML a step wrote)."""


def plotly_js_path() -> str:
    """plotly.js as bundled in the plotly wheel: served locally, nothing fetched from a CDN."""
    import plotly

    return os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js")


def create_app(prefix: str, poll_s: float = POLL_S, model_roots: Sequence[str] = ()) -> Starlette:
    """The dashboard of ``prefix``; ``model_roots``: directories outside it whose HF models ``/play``
    may load too (docs/dashboard.md)."""
    # Endpoints are plain functions: Starlette runs them in its thread pool, so blocking file
    # and object-store reads never stall the event loop (or each other).
    store = PrefixStore(prefix)
    curves = CurveCache()
    playground = Playground(store, model_roots)
    templates = Jinja2Templates(directory=str(PACKAGE / "templates"))
    templates.env.globals.update(prefix=store.prefix, poll_ms=int(poll_s * 1000), status_class=views.status_class)
    templates.env.filters.update(duration=views.duration, when=views.when, size=views.size)

    def render(request: Request, name: str, **context: Any) -> Response:
        return templates.TemplateResponse(request, name, context)

    def rel_param(request: Request) -> str:
        return request.path_params.get("rel") or request.query_params.get("path", "")

    def experiments_page(request: Request) -> Response:
        return render(request, "experiments.html", experiments=[views.experiment_row(e) for e in store.experiments()])

    def experiments_api(request: Request) -> Response:
        return JSONResponse([views.experiment_row(e) for e in store.experiments()])

    def experiment_page(request: Request) -> Response:
        experiment = store.experiment(request.path_params["key"])
        return render(request, "experiment.html", **views.experiment_context(experiment))

    def experiment_api(request: Request) -> Response:
        experiment = store.experiment(request.path_params["key"])
        return JSONResponse(views.experiment_json(experiment))

    def step_page(request: Request) -> Response:
        resolved = store.resolve_step(rel_param(request))
        if "rel" not in request.path_params:
            return RedirectResponse(f"/step/{urllib.parse.quote(resolved.rel)}", status_code=307)
        return render(request, "step.html", **views.step_context(store, resolved, curves))

    def step_api(request: Request) -> Response:
        resolved = store.resolve_step(rel_param(request))
        return JSONResponse(views.step_json(store.step(resolved.rel)))

    def metrics_api(request: Request) -> Response:
        resolved = store.resolve_step(rel_param(request))
        return JSONResponse(curves.get(resolved.url).as_json())

    def compare_page(request: Request) -> Response:
        runs = views.compare_runs(store, request.query_params.getlist("run"))
        return render(request, "compare.html", runs=runs, candidates=views.training_steps(store))

    def compare_api(request: Request) -> Response:
        runs = views.compare_runs(store, request.query_params.getlist("run"))
        return JSONResponse([views.compare_json(store, run, curves) for run in runs])

    def files_page(request: Request) -> Response:
        resolved = store.paths.resolve(rel_param(request))
        offset = max(0, int(request.query_params.get("offset", "0") or 0))
        return render(request, "files.html", **views.files_context(store, resolved, offset))

    def items_page(request: Request) -> Response:
        resolved = store.paths.resolve(rel_param(request))
        offset = max(0, int(request.query_params.get("offset", "0") or 0))
        return render(request, "items.html", **views.items_context(store, resolved, offset))

    def raw_file(request: Request) -> Response:
        resolved = store.paths.resolve(rel_param(request))
        member = request.query_params.get("member")
        if member is not None:  # one utterance inside a tar shard
            try:
                data = previews.tar_member_bytes(resolved.url, member)
            except (KeyError, FileNotFoundError, IsADirectoryError) as e:
                raise OutsidePrefix(f"{resolved.rel}: no member {member!r}") from e
            return Response(
                data, media_type=mimetypes.guess_type(member)[0] or "application/octet-stream", headers=RAW_HEADERS
            )
        media_type = mimetypes.guess_type(resolved.url)[0] or "application/octet-stream"
        if store.paths.local:
            if not os.path.isfile(resolved.url):
                raise OutsidePrefix(resolved.rel)
            return FileResponse(resolved.url, media_type=media_type, headers=RAW_HEADERS)
        fs, path = fileio.filesystem(resolved.url)
        if not fs.isfile(path):
            raise OutsidePrefix(resolved.rel)
        if (fs.size(path) or 0) > MAX_RAW_BYTES:
            return PlainTextResponse("file too large to serve from an object store", status_code=413)
        return Response(fileio.read_bytes(resolved.url), media_type=media_type, headers=RAW_HEADERS)

    def plotly_js(request: Request) -> Response:
        return FileResponse(plotly_js_path(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    async def not_found(request: Request, exc: Exception) -> Response:
        message = "not found" if isinstance(exc, OutsidePrefix) else getattr(exc, "detail", "not found")
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=404)
        return render_error(request, 404, message)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:
            return await not_found(request, exc)
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code)

    async def server_error(request: Request, exc: Exception) -> Response:
        logger.exception("dashboard: %s failed", request.url.path)
        return render_error(request, 500, f"internal error: {type(exc).__name__}: {str(exc)[:200]}")

    def render_error(request: Request, status: int, message: str) -> Response:
        try:
            return templates.TemplateResponse(
                request, "error.html", {"status": status, "message": message}, status_code=status
            )
        except Exception:  # the error page itself must not fail
            return PlainTextResponse(f"{status}: {message}", status_code=status)

    routes = [
        Route("/", experiments_page),
        Route("/api/experiments", experiments_api),
        Route("/experiment/{key}", experiment_page),
        Route("/api/experiment/{key}", experiment_api),
        Route("/step", step_page),
        Route("/step/{rel:path}", step_page),
        Route("/api/step", step_api),
        Route("/api/step/{rel:path}", step_api),
        Route("/api/metrics/{rel:path}", metrics_api),
        Route("/compare", compare_page),
        Route("/api/compare", compare_api),
        Route("/files", files_page),
        Route("/files/{rel:path}", files_page),
        Route("/items/{rel:path}", items_page),
        Route("/raw/{rel:path}", raw_file),
        *playground.routes(render),
        Route("/static/plotly.min.js", plotly_js),
        Mount("/static", StaticFiles(directory=str(PACKAGE / "static")), name="static"),
    ]
    handlers: dict[Any, Callable[..., Any]] = {
        OutsidePrefix: not_found,
        HTTPException: http_error,
        Exception: server_error,
    }

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        playground.shutdown()

    return Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
