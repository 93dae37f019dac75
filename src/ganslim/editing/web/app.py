"""The editor's web server (FastAPI on uvicorn): the page, and a small JSON API over an
:class:`~ganslim.editing.web.editor.Editor`.

Routes: ``GET /`` the page; ``GET /api/config`` directions, sub-generators, their measured times and the default
preview; ``POST /api/sample`` ``{"seed": S}``; ``POST /api/upload`` the image file as the body; ``POST /api/render``
``{"strengths": {name: s}, "final": bool, "resolution": R, "ratio": q}``; ``GET /api/result.png`` and
``GET /api/result.npy`` the finalized image and its W+. A refused request answers ``{"error": "one line"}`` with a
4xx status, which the page shows; nothing a request sends can stop the server.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ganslim.apps.generate import MAX_SEED
from ganslim.editing.web.editor import SLIDER_RANGE, Editor, RenderConfig, png_data_url, w_plus_npy
from ganslim.editing.web.uploads import MAX_UPLOAD_BYTES
from ganslim.errors import GanslimError

STATIC = Path(__file__).parent / "static"


class SampleRequest(BaseModel):
    seed: int = Field(ge=0, le=MAX_SEED)


class RenderRequest(BaseModel):
    strengths: dict[str, float] = {}
    final: bool = False
    resolution: int | None = None
    ratio: float | None = None


def create_app(editor: Editor, title: str = "ganslim editor") -> FastAPI:
    """The FastAPI app serving ``editor`` (see the module docstring); ``title`` heads the page."""
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(GanslimError)
    async def refused(request: Request, error: GanslimError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, error: RequestValidationError) -> JSONResponse:
        problem = error.errors()[0] if error.errors() else {"loc": (), "msg": "malformed request"}
        where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
        return JSONResponse({"error": f"malformed request: {where or 'body'}: {problem.get('msg')}"},
                            status_code=400)

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception) -> JSONResponse:  # uvicorn logs the traceback
        return JSONResponse({"error": f"the server failed on this request ({type(error).__name__}); see its log"},
                            status_code=500)

    @app.get("/")
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/config")
    def config() -> dict:
        return {"title": title, "slider_range": SLIDER_RANGE, "upload": editor.invert is not None,
                "max_upload_mb": MAX_UPLOAD_BYTES // 2**20,
                "directions": [{"name": name, "spread": round(float(spread), 4)}
                               for name, spread in zip(editor.names, editor.spreads)],
                "configs": [{"resolution": c.resolution, "ratio": c.ratio, "ms": round(ms, 2)}
                            for c, ms in editor.latencies_ms.items()],
                "full": {"resolution": editor.full.resolution, "ratio": editor.full.ratio},
                "default_preview": {"resolution": editor.default_preview.resolution,
                                    "ratio": editor.default_preview.ratio},
                "target_ms": round(editor.target_ms, 2)}

    @app.post("/api/sample")
    def sample(request: SampleRequest) -> dict:
        return editor.load_seed(request.seed).to_json()

    @app.post("/api/upload")
    async def upload(request: Request) -> JSONResponse:
        data = await _read_limited(request)
        if data is None:
            return JSONResponse({"error": f"the upload is larger than the {MAX_UPLOAD_BYTES // 2**20} MB limit: "
                                          f"upload a smaller image"}, status_code=413)
        image, render = await run_in_threadpool(editor.load_upload, data)
        return JSONResponse({"input": png_data_url(image), **render.to_json()})

    @app.post("/api/render")
    def render(request: RenderRequest) -> dict:
        config = None
        if not request.final:
            if request.resolution is None or request.ratio is None:
                raise GanslimError("a preview needs a resolution and a width ratio")
            config = RenderConfig(request.resolution, request.ratio)
        return editor.render(request.strengths, config).to_json()

    @app.get("/api/result.png")
    def result_png() -> Response:
        return Response(editor.result()[1], media_type="image/png",
                        headers={"Content-Disposition": 'attachment; filename="edit.png"'})

    @app.get("/api/result.npy")
    def result_npy() -> Response:
        return Response(w_plus_npy(editor.result()[0]), media_type="application/octet-stream",
                        headers={"Content-Disposition": 'attachment; filename="edit_w_plus.npy"'})

    return app


async def _read_limited(request: Request) -> bytes | None:
    """The request body, or None once it passes :data:`MAX_UPLOAD_BYTES` (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (port 0: any free one); one line when it cannot be had."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as error:
        raise _unavailable(host, port, error) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise _unavailable(host, port, error) from None
    sock.listen(64)
    return sock


def _unavailable(host: str, port: int, error: OSError) -> GanslimError:
    return GanslimError(f"cannot listen on {host}:{port} ({error.strerror or error}): pass another --port or --host")


def uvicorn_server(app: FastAPI) -> uvicorn.Server:
    """A uvicorn server for ``app``, logging warnings only: ``.run(sockets=[bind(host, port)])`` serves until
    Ctrl-C (or until ``should_exit`` is set)."""
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))


@contextmanager
def serving_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a daemon thread (port 0: any free one) while the block runs; yields its base
    URL. For scripts and tests that drive the page themselves."""
    sock = bind(host, port)
    server = uvicorn_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise GanslimError(f"the editor server did not start on {host}:{sock.getsockname()[1]}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
