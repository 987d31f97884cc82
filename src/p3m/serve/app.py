"""The HTTP service: matting and anonymization over HTTP, and the web page at ``/``.

- ``POST /v1/matte``: an image (multipart field ``image``, or the raw body) gives a PNG:
  ``output=cutout`` (default, RGBA), ``alpha`` or ``composite`` (on ``background``: a
  CSS colour or ``blur``, or an uploaded ``background_image``); ``method`` for P3M-Net.
- ``POST /v1/anonymize``: the anonymized image and its audit as JSON; 422 with the
  reason when the image is held back (no face, or still identifiable: fail closed).
- ``GET /v1/engines``, ``GET /healthz``; OpenAPI at ``/docs``.

The engine is opened once. Requests run one at a time on it (LiteRT's interpreter is
not thread-safe, and one P3M-Net pass uses every core); up to ``queue`` more wait,
and beyond that the answer is 503 with Retry-After. Bodies over ``max_body`` and
images over ``max_pixels`` are 413; a bad image is 400 with the same one-line reason
the command line prints; a request that takes longer than ``timeout`` is 504. With a
``token``, every request must carry ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from fastapi import Request  # at module level: FastAPI resolves the endpoints' annotations here


@dataclass
class ServiceLimits:
    max_body: int = 25 * 2**20      # bytes of one request
    max_pixels: int = 40_000_000    # pixels of one image
    queue: int = 8                  # requests waiting beside the one running
    timeout: float = 120.0          # seconds for one request, queue included
    token: str | None = None        # required bearer token (off the loopback)


class _Refusal(Exception):
    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or {}


def create_app(engine, limits: ServiceLimits | None = None):
    """The FastAPI application around one open engine."""
    from concurrent.futures import ThreadPoolExecutor

    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    import p3m

    limits = limits or ServiceLimits()
    # Two threads do all image work: one runs the engine (one request at a time anyway),
    # one decodes and encodes, so that work overlaps the engine's. Few fixed threads keep
    # the allocator's memory from spreading over per-thread arenas (docs/serve.md).
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="p3m-engine")
    coder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="p3m-codec")

    async def on_coder(function, *args):
        return await asyncio.get_running_loop().run_in_executor(coder, function, *args)
    app = FastAPI(title="p3m", version=p3m.__version__,
                  description="Privacy-preserving portrait matting: cut-outs, backgrounds, face anonymization.")
    state = {"waiting": 0}
    variants: dict[str, Any] = {}

    def engine_for(method: str | None):
        """The engine, or a sibling with another P3M-Net strategy (same network, no reload)."""
        if not method or method.lower() == getattr(getattr(engine, "runner", None), "method", None):
            return engine
        runner = getattr(engine, "runner", None)
        if runner is None:
            raise _Refusal(400, f"method {method!r}: the running engine ({engine.description}) has no strategies")
        if method.lower() not in variants:
            variants[method.lower()] = p3m.open_engine(runner.model, method=method)
        return variants[method.lower()]

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if limits.token and request.url.path not in ("/", "/healthz"):
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {limits.token}".encode()):
                return JSONResponse({"error": "a valid 'Authorization: Bearer <token>' header is required"}, 401)
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limits.max_body:
            return JSONResponse({"error": f"request of {int(length)} bytes exceeds the limit of {limits.max_body}"}, 413)
        return await call_next(request)

    @app.exception_handler(_Refusal)
    async def refused(request: Request, refusal: _Refusal):
        return JSONResponse({"error": refusal.reason}, refusal.status, headers=refusal.headers)

    async def read_request(request: Request) -> tuple[bytes, dict[str, str], bytes | None]:
        """(image bytes, parameters, background image bytes or None)."""
        params = dict(request.query_params)
        background = None
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form(max_files=2, max_fields=20)
            upload = form.get("image") or form.get("file")
            if upload is None or isinstance(upload, str):
                raise _Refusal(400, "no image: send it as the multipart field 'image' or as the body")
            data = await upload.read()
            extra = form.get("background_image")
            if extra is not None and not isinstance(extra, str):
                background = await extra.read()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        else:
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_body:
                    raise _Refusal(413, f"request exceeds the limit of {limits.max_body} bytes")
                chunks.append(chunk)
            data = b"".join(chunks)
        if len(data) > limits.max_body:
            raise _Refusal(413, f"image exceeds the limit of {limits.max_body} bytes")
        return data, params, background

    def decode(data: bytes, name: str) -> np.ndarray:
        from p3m.errors import ImageError, ImageTooLargeError
        from p3m.io.images import read_image_bytes

        try:
            return read_image_bytes(data, name=name, max_pixels=limits.max_pixels)
        except ImageTooLargeError as exc:
            raise _Refusal(413, str(exc)) from None
        except ImageError as exc:
            raise _Refusal(400, str(exc)) from None

    async def queued(work, *args):
        """Run ``work`` on the engine's turn; 503 when the queue is full, 504 past the time limit."""
        if state["waiting"] > limits.queue:
            raise _Refusal(503, "busy: the queue is full, retry shortly", {"Retry-After": "2"})
        state["waiting"] += 1
        try:
            return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(worker, work, *args),
                                          limits.timeout)
        except asyncio.TimeoutError:
            raise _Refusal(504, f"the request took longer than {limits.timeout:g} s") from None
        finally:
            state["waiting"] -= 1

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return (resources.files("p3m.serve") / "page.html").read_text()

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "waiting": state["waiting"]}

    @app.get("/v1/engines")
    async def engines():
        runner = getattr(engine, "runner", None)
        return {"engine": engine.description, "summary": engine.summary(),
                "weights": str(engine.weights) if engine.weights else None,
                "methods": ["hybrid", "resize"] if runner is not None else [],
                "method": getattr(runner, "method", None)}

    @app.post("/v1/matte", responses={200: {"content": {"image/png": {}}}})
    async def matte(request: Request):
        """The image's cut-out (RGBA PNG), alpha matte or composite."""
        from p3m.errors import P3MError
        from p3m.inference.compose import Background, parse_colour
        from p3m.io.writers import encode_image
        from p3m.jobs.matte import MatteOptions, render_outputs

        data, params, background_bytes = await read_request(request)
        output = params.get("output", "cutout")
        if output not in ("cutout", "alpha", "composite"):
            raise _Refusal(400, f"output must be one of cutout, alpha, composite; got {output!r}")
        spec = params.get("background") or "white"
        if parse_colour(spec) is None and spec.lower() != "blur":
            # never a path: a string naming a file would read it from the server's disk
            raise _Refusal(400, f"background {spec!r}: not a CSS colour or 'blur'; upload an image as "
                                "'background_image'")
        try:
            chosen = engine_for(params.get("method"))
        except P3MError as exc:
            raise _Refusal(400, str(exc)) from None
        image = await on_coder(decode, data, "image")
        plate = await on_coder(decode, background_bytes, "background_image") if background_bytes else spec
        options = MatteOptions(background=Background(plate),
                               premultiplied=params.get("premultiplied") in ("1", "true"))

        def work():
            return render_outputs(image, chosen.predict([image])[0], (output,), options)[output]

        try:
            array = await queued(work)
        except P3MError as exc:
            raise _Refusal(400, str(exc)) from None
        return Response(await on_coder(encode_image, array, ".png"), media_type="image/png")

    @app.post("/v1/anonymize")
    async def anonymize(request: Request):
        """The anonymized image (base64 PNG) and its audit; 422 when it is held back."""
        from p3m.errors import P3MError
        from p3m.io.writers import encode_image
        from p3m.jobs.anonymize import AnonymizeOptions, blur_until_unidentifiable
        from p3m.privacy.anonymize import STRENGTHS, Outcome

        data, params, _ = await read_request(request)
        strength = params.get("strength", "medium")
        if strength not in STRENGTHS:
            raise _Refusal(400, f"strength must be one of {', '.join(STRENGTHS)}; got {strength!r}")
        image = await on_coder(decode, data, "image")

        def work():
            return blur_until_unidentifiable(image, None, None, AnonymizeOptions(strength=strength))

        try:
            result, audit, scale, identifiable = await queued(work)
        except P3MError as exc:
            raise _Refusal(400, str(exc)) from None
        summary = None if audit is None else {
            "faces": audit.faces, "redetected": audit.redetected, "identity_matches": audit.identity_matches,
            "distances": [round(d, 4) for d in audit.distances], "low_confidence": audit.low_confidence}
        if result.status is Outcome.NO_FACE:
            return JSONResponse({"status": "no-face", "reason": "no face found: not anonymized (fail closed)"}, 422)
        if identifiable:
            return JSONResponse({"status": "identifiable", "audit": summary,
                                 "reason": "a face is still detected or recognised at the strongest blur: "
                                           "not anonymized (fail closed)"}, 422)
        png = base64.b64encode(await on_coder(encode_image, result.image, ".png")).decode()
        return {"status": "ok", "faces": len(result.faces), "sigma_scale": round(scale, 4), "audit": summary,
                "image": f"data:image/png;base64,{png}"}

    return app
