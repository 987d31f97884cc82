"""The HTTP service: matting and anonymization over HTTP, and the web page at ``/``.

- ``POST /v1/matte``: an image (multipart field ``image``, or the raw body) gives a PNG:
  ``output=cutout`` (default, RGBA), ``alpha`` or ``composite`` (on ``background``: a
  CSS colour or ``blur``, or an uploaded ``background_image``); ``method`` for P3M-Net;
  ``anonymize=true`` (with the face options) blurs every face, failing closed (422);
  the privacy outcome comes in the ``X-P3M-Privacy`` header.
- ``POST /v1/anonymize``: the anonymized image and its audit as JSON; 422 with the
  reason when the image is held back (fail closed: no face, a person without one, still
  identifiable, or with ``hold_unaudited`` a region the audit cannot check).

Parameters come from the options model (:func:`p3m.options.service_options`), as query
parameters or form fields; the OpenAPI schema lists each with its type, default and
allowed values, and an unknown one is refused with the accepted names. Each endpoint
runs the one per-image pipeline (:mod:`p3m.pipeline`, :mod:`p3m.privacy.anonymize`).
- ``GET /v1/engines``, ``GET /healthz``; OpenAPI at ``/docs``.
- ``WS /v1/live``: camera frames in, alphas out, one at a time (:mod:`p3m.serve.live`).

The engine is opened once. Requests run one at a time on it (LiteRT's interpreter is
not thread-safe, and one P3M-Net pass uses every core). The :class:`ServiceLimits`
are kept before any endpoint runs (:mod:`p3m.serve.guard`: Host, Origin, token, at
most ``queue`` requests beside the running one, else 503 with Retry-After; bodies over
``max_body`` 413 however they are framed) and by the server
(:mod:`p3m.serve.server`: connections that do not send their headers in time are
closed). Images over ``max_pixels`` are 413; a bad image is 400 with the same one-line
reason the command line prints; an upload slower than ``timeout`` is 408, and a request
that waits and works longer than ``timeout`` after it is 504.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from fastapi import Request  # at module level: FastAPI resolves the endpoints' annotations here

from p3m.errors import OptionError
from p3m.options import METHODS
from p3m.serve.guard import Guard, Refusal


@dataclass
class ServiceLimits:
    max_body: int = 25 * 2**20      # bytes of one request
    max_pixels: int = 40_000_000    # pixels of one image
    queue: int = 8                  # requests waiting beside the one running
    timeout: float = 120.0          # seconds for a request's upload, and again for its wait and work
    token: str | None = None        # required bearer token (off the loopback)
    hosts: tuple[str, ...] = ()     # the Host names answered (a loopback bind: its own names); () answers any
    header_timeout: float = 10.0    # seconds a connection may take to send a request's headers
    max_connections: int = 1000     # open connections; beyond, the oldest without a request is closed
    max_frame: int = 4 * 2**20      # bytes of one message of a live stream (a frame; the hello)
    max_work_size: int = 1024       # the default engine's working size a request may ask for (1024: 2 s a photo)
    max_band: float = 0.05          # and its band (the time grows with both: 1024 px at 0.2 took 131 s)


#: The upload fields of each endpoint (files), beside the option parameters.
UPLOADS = {"matte": ("image", "background_image"), "anonymize": ("image",)}


#: The answers besides 200, for OpenAPI: each error is {"error": one line}.
REFUSALS = {400: {"description": "a bad image, option or field: {\"error\": the one-line reason}"},
            401: {"description": "the bearer token is missing or wrong"},
            413: {"description": "the body or the image is over the limit"},
            422: {"description": "held back (fail closed): no face found, a person without a face found, a "
                                 "face still identifiable, or (hold_unaudited) a region the audit cannot check; "
                                 "{\"status\", \"reason\", \"privacy\"}"},
            503: {"description": "the queue is full; retry after Retry-After seconds"},
            504: {"description": "the request took longer than the time limit"}}


def _schema(spec, default, typed) -> dict[str, Any]:
    """The JSON schema of one option's values (``default`` as shown, ``typed`` the model's default)."""
    allowed = spec.allowed()
    if allowed is not None:
        schema: dict[str, Any] = {"type": "string", "enum": list(allowed)}
    elif spec.switch or isinstance(typed, bool):
        schema = {"type": "boolean"}
    elif spec.number is not None:
        schema = {"type": "integer" if spec.number is int else "number"}
        if spec.low is not None:
            schema["exclusiveMinimum" if spec.open_low else "minimum"] = spec.low
        if spec.high is not None:
            schema["maximum"] = spec.high
    else:
        schema = {"type": "string"}
    if default is not None:
        schema["default"] = default
    return schema


def openapi_extra(endpoint: str) -> dict[str, Any]:
    """The endpoint's parameters and body for OpenAPI, from the options model."""
    from p3m.options import FaceBlurOptions, service_options

    def default(name: str, owner) -> Any:
        # Face options apply only with anonymize=true on /v1/matte: no default there, so that
        # /docs "Try it out" does not send them unasked (which is refused without anonymize).
        if endpoint == "matte" and owner is FaceBlurOptions:
            return None
        return False if owner.spec(name).switch else owner.default(name)

    def described(name: str, owner) -> str:
        text, value = owner.spec(name).help, owner.default(name)
        if default(name, owner) is None and value is not None:
            text += f" (default {value}; only with anonymize=true)"
        return text

    parameters = [{"name": name, "in": "query", "required": False, "description": described(name, owner),
                   "schema": _schema(owner.spec(name), default(name, owner), owner.default(name))}
                  for name, owner in service_options(endpoint)]
    files = {name: {"type": "string", "format": "binary"} for name in UPLOADS[endpoint]}
    return {"parameters": parameters, "requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": files}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def _no_upload(name: str, value: Any) -> bool:
    """A form's file input with nothing chosen: browsers send a part with an empty file
    name and no bytes, and /docs an empty text field. Neither is an upload."""
    if name not in ("image", "background_image", "file"):
        return False
    if isinstance(value, str):
        return value == ""
    return not value.filename and value.size == 0


def _serve_docs(app) -> None:
    """/docs: Swagger UI from the swagger-ui-bundle-v2 package, served by this service
    (FastAPI's own /docs loads its script from a CDN into the service's origin)."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="p3m: API",
                                   swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/assets/swagger-ui.css",
                                   swagger_favicon_url="/docs/assets/favicon-32x32.png")


def failure(exc: Exception, faces) -> Refusal:
    """The 400 of a request whose work failed. A face model missing on the server names
    the detector asked for and what to install, not the model's path on this machine."""
    from p3m.errors import ModelMissingError

    if isinstance(exc, ModelMissingError):
        asked = f"detector={faces.detector}: " if faces is not None else ""
        return Refusal(400, f"{asked}{exc.remedy}")
    return Refusal(400, str(exc))


def create_app(engine, limits: ServiceLimits | None = None):
    """The FastAPI application around one open engine."""
    from concurrent.futures import ThreadPoolExecutor

    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    import p3m

    limits = limits or ServiceLimits()
    # Two threads do all image work: one runs the engine (one request at a time anyway),
    # one decodes and encodes, so that work overlaps the engine's. Few fixed threads keep
    # the allocator's memory from spreading over per-thread arenas (docs/serve.md).
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="p3m-engine")
    coder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="p3m-codec")

    async def on_coder(function, *args):
        return await asyncio.get_running_loop().run_in_executor(coder, function, *args)
    app = FastAPI(title="p3m", version=p3m.__version__, docs_url=None, redoc_url=None,
                  description="Privacy-preserving portrait matting: cut-outs, backgrounds, face anonymization.")
    _serve_docs(app)
    app.state.limits = limits  # the server's connection limits too (p3m.serve.server.config)
    counts: dict[str, int] = {}
    app.add_middleware(Guard, limits=limits, counts=counts)
    variants: dict[str, Any] = {}

    def engine_for(method: str | None, work_size: int | None = None, band: float | None = None):
        """The engine, or a sibling with another P3M-Net strategy (same network, no reload),
        or the default engine with another working size or band (same model, no reload)."""
        settings = {name: value for name, value in (("work_size", work_size), ("band", band)) if value is not None}
        if settings:
            if not hasattr(engine, "tuned"):
                raise Refusal(400, f"{', '.join(settings)}: settings of the default engine; the running engine "
                                   f"({engine.description}) has none")
            if method:
                raise Refusal(400, f"method {method!r}: the running engine ({engine.description}) has no strategies")
            for name, value, most in (("work_size", work_size, limits.max_work_size), ("band", band, limits.max_band)):
                if value is not None and value > most:
                    raise Refusal(400, f"{name} {value:g}: over this service's limit of {most:g} (the time grows "
                                       "with it; run p3m matte for more)")
            return engine.tuned(**settings)
        if not method or method.lower() == getattr(getattr(engine, "runner", None), "method", None):
            return engine
        runner = getattr(engine, "runner", None)
        if runner is None:
            raise Refusal(400, f"method {method!r}: the running engine ({engine.description}) has no strategies")
        if method.lower() not in variants:
            variants[method.lower()] = p3m.open_engine(runner.model, method=method)
        return variants[method.lower()]

    @app.exception_handler(Refusal)
    async def refused(request: Request, refusal: Refusal):
        return JSONResponse({"error": refusal.reason}, refusal.status, headers=refusal.headers)

    @app.exception_handler(StarletteHTTPException)
    async def framework_refusal(request: Request, exc: StarletteHTTPException):
        """The framework's own refusals (a broken multipart body, 404, 405) in the service's
        one error shape, {"error": one line}."""
        return JSONResponse({"error": " ".join(str(exc.detail).split())}, exc.status_code,
                            headers=getattr(exc, "headers", None))

    async def read_request(request: Request, endpoint: str) -> tuple[bytes, dict[str, str], bytes | None]:
        """(image bytes, parameters, background image bytes or None). Unknown fields, a field
        given twice (in the query, the form, or both) and unexpected uploads are refused:
        nothing a client sends is silently dropped or overridden."""
        from p3m.options import service_options, unknown_options

        given = list(request.query_params.multi_items())
        background = None
        if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            form = await request.form(max_files=2, max_fields=20)
            uploads: dict[str, Any] = {}
            for name, value in form.multi_items():
                if _no_upload(name, value):
                    continue  # a file input left empty, as browsers and /docs send it
                if isinstance(value, str):
                    given.append((name, value))
                elif name in uploads:
                    raise Refusal(400, f"upload field {name!r} given more than once")
                else:
                    uploads[name] = value
            accepted = (*UPLOADS[endpoint], "file")
            strange = [name for name in uploads if name not in accepted]
            if strange:
                raise Refusal(400, f"unknown upload field {', '.join(map(repr, strange))}; accepted: "
                                    f"{', '.join(UPLOADS[endpoint])}")
            if "image" in uploads and "file" in uploads:
                raise Refusal(400, "two images: send one, as the multipart field 'image'")
            upload = uploads.get("image") or uploads.get("file")
            if upload is None:
                raise Refusal(400, "no image: send it as the multipart field 'image' or as the body")
            data = await upload.read()
            if "background_image" in uploads:
                background = await uploads["background_image"].read()
                if not background:
                    raise Refusal(400, "background_image: the upload is empty")
        else:
            data = await request.body()  # its size kept to max_body by the Guard
        names = [name for name, _ in given]
        accepted = [name for name, _ in service_options(endpoint)]
        unknown = [name for name in dict.fromkeys(names) if name not in accepted]
        if unknown:
            raise Refusal(400, str(unknown_options(unknown, accepted)))
        twice = [name for name in dict.fromkeys(names) if names.count(name) > 1]
        if twice:
            raise Refusal(400, f"{', '.join(map(repr, twice))} given more than once (query and form count alike); "
                                "give each once")
        return data, dict(given), background

    def decode(data: bytes, name: str, keep_alpha: bool = False) -> np.ndarray:
        """The upload as RGB; ``keep_alpha``: an upload with an alpha channel as RGBA (its
        colours as stored), for an anonymized image that keeps it."""
        from p3m.errors import ImageError, ImageTooLargeError
        from p3m.io.images import read_image_bytes

        try:
            if keep_alpha:
                rgb, alpha = read_image_bytes(data, name=name, max_pixels=limits.max_pixels, split_alpha=True)
                return rgb if alpha is None else np.dstack([rgb, alpha])
            return read_image_bytes(data, name=name, max_pixels=limits.max_pixels)
        except ImageTooLargeError as exc:
            raise Refusal(413, str(exc)) from None
        except ImageError as exc:
            raise Refusal(400, str(exc)) from None

    async def queued(work, *args):
        """Run ``work`` on the engine's turn (the Guard admitted the request); 504 past the time limit."""
        try:
            return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(worker, work, *args),
                                          limits.timeout)
        except asyncio.TimeoutError:
            raise Refusal(504, f"the request took longer than {limits.timeout:g} s") from None

    from p3m.serve.live import add_live_stream

    add_live_stream(app, limits=limits, counts=counts, engine=engine, on_engine=queued, on_coder=on_coder,
                    decode=decode)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return (resources.files("p3m.serve") / "page.html").read_text()

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "waiting": counts["in_flight"]}

    @app.get("/v1/engines")
    async def engines():
        runner = getattr(engine, "runner", None)
        return {"engine": engine.description, "summary": engine.summary(),
                "weights": str(engine.weights) if engine.weights else None,
                "methods": list(METHODS) if runner is not None else [],
                "method": getattr(runner, "method", None)}

    def options_of(params: dict[str, str], background: np.ndarray | None):
        """(one output kind, MatteOptions, the engine's method / work_size / band) of a /v1/matte
        request, checked by the model."""
        from p3m.options import EngineOptions, FaceBlurOptions, ImageRequest, MatteOptions, face_options_for

        def pick(owner) -> dict[str, str]:
            return {name: value for name, value in params.items() if name in owner.names()}

        output = ImageRequest.from_values(pick(ImageRequest), "service").output
        tuning = {name: EngineOptions.spec(name).parse(name, params.get(name), "service")
                  for name in ("method", "work_size", "band")}
        looks = pick(MatteOptions)
        faces = face_options_for(looks.pop("anonymize", None), pick(FaceBlurOptions), "service")
        if background is not None:
            if "background" in looks:
                raise OptionError("background and background_image name two backgrounds; give one")
            looks["background"] = background
        return output, MatteOptions.from_values({**looks, "save": (output,)}, "service", anonymize=faces), tuning

    @app.exception_handler(OptionError)
    async def bad_option(request: Request, error: OptionError):
        return JSONResponse({"error": str(error)}, 400)

    @app.post("/v1/matte", openapi_extra=openapi_extra("matte"), responses={
        200: {"content": {"image/png": {}}, "description": "the PNG; with anonymize, the outcome and audit in the "
              "X-P3M-Privacy header (JSON); a photo in which no face is found, a line in X-P3M-Warning"},
        **REFUSALS})
    async def matte(request: Request):
        """The image's cut-out (RGBA PNG), alpha matte or composite; with ``anonymize``, every
        face blurred (fail closed: 422 when the anonymization holds the image back)."""
        from p3m.errors import P3MError
        from p3m.io.writers import encode_image
        from p3m.pipeline import matte_image

        data, params, background_bytes = await read_request(request, "matte")
        plate = await on_coder(decode, background_bytes, "background_image") if background_bytes else None
        output, options, tuning = options_of(params, plate)
        try:
            chosen = engine_for(**tuning)
        except P3MError as exc:
            raise Refusal(400, str(exc)) from None
        image = await on_coder(decode, data, "image")

        try:
            result = await queued(matte_image, chosen, image, options)
        except OptionError:
            raise
        except P3MError as exc:
            raise failure(exc, options.anonymize) from None
        privacy = result.privacy_dict()
        if result.held_back:
            return JSONResponse({"status": result.cause.status.value, "reason": result.reason, "privacy": privacy}, 422)
        headers = {"X-P3M-Privacy": json.dumps(privacy, separators=(",", ":"))} if privacy else {}
        if result.warning:
            headers["X-P3M-Warning"] = result.warning
        return Response(await on_coder(encode_image, result.outputs[output], ".png"), media_type="image/png",
                        headers=headers)

    @app.post("/v1/anonymize", openapi_extra=openapi_extra("anonymize"), responses=REFUSALS)
    async def anonymize(request: Request):
        """The anonymized image (base64 PNG) and its audit; 422 when it is held back."""
        from p3m.errors import P3MError
        from p3m.io.writers import encode_image
        from p3m.options import FaceBlurOptions
        from p3m.privacy.anonymize import anonymize as anonymize_image

        data, params, _ = await read_request(request, "anonymize")
        options = FaceBlurOptions.from_values(params, "service")
        image = await on_coder(decode, data, "image", True)
        try:
            result = await queued(anonymize_image, image, None, options)
        except P3MError as exc:
            raise failure(exc, options) from None
        body = result.to_dict()
        if not result.written:
            return JSONResponse({**body, "reason": result.reason}, 422)
        png = base64.b64encode(await on_coder(encode_image, result.image, ".png")).decode()
        return {**body, "image": f"data:image/png;base64,{png}"}

    return app
