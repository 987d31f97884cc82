"""``p3m serve``: the HTTP service and its web page (FastAPI on uvicorn)."""

from __future__ import annotations

import argparse
import ipaddress
import os

from p3m.cli import say
from p3m.cli.options import add_engine_options, number_in, open_engine_from, positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="an HTTP service and web page for cut-outs and face anonymization",
        description="Serve POST /v1/matte, POST /v1/anonymize, GET /v1/engines, /healthz, OpenAPI at /docs "
        "and a web page at /. Binds 127.0.0.1 by default; any other address needs a token (--token or "
        "P3M_TOKEN) that every request must carry as 'Authorization: Bearer TOKEN' (the page reads it from "
        "#token=... in its address). Needs: pip install 'p3m[serve]'.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=number_in(1, 65535, whole=True), default=8000, help="port (default 8000)")
    parser.add_argument("--token", default=None, help="bearer token requests must carry (default $P3M_TOKEN)")
    add_engine_options(parser)
    parser.add_argument("--max-body-mb", type=number_in(0, 1024, open_low=True), default=25,
                        help="largest request in MB (default 25)")
    parser.add_argument("--max-pixels", type=number_in(1), default=40e6, help="largest image in pixels (default 40e6)")
    parser.add_argument("--queue", type=positive_int, default=8, help="requests that may wait (default 8)")
    parser.add_argument("--timeout", type=number_in(0, open_low=True), default=120,
                        help="seconds for a request's upload, and as long again for its wait and work (default 120)")
    parser.add_argument("--header-timeout", type=number_in(0, open_low=True), default=10,
                        help="seconds a connection may take to send a request's headers (default 10)")
    parser.add_argument("--max-connections", type=positive_int, default=1000,
                        help="open connections; beyond, the oldest one without a request is closed (default 1000)")
    parser.set_defaults(func=run)


#: The names a browser on this machine uses for a loopback service (its Host header).
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    from p3m.errors import OptionError

    token = args.token or os.environ.get("P3M_TOKEN") or None
    if not _loopback(args.host) and not token:
        raise OptionError(f"--host {args.host} is reachable from other machines: give a token with --token or "
                          "P3M_TOKEN, which every request must then carry")
    try:
        import uvicorn  # noqa: F401 (missing: the one line below)

        from p3m.serve.app import ServiceLimits, create_app
        from p3m.serve.server import serve
    except ImportError as exc:
        raise OptionError(f"p3m serve needs FastAPI and uvicorn ({exc.name} is missing): "
                          "pip install 'p3m[serve]'") from None
    from p3m.utils.memory import return_freed_memory

    return_freed_memory()  # flat memory between requests (docs/serve.md); before the engine asks to keep it
    engine = open_engine_from(args)
    say.note(f"engine {engine.summary(verbose=args.verbose)}")
    limits = ServiceLimits(max_body=int(args.max_body_mb * 2**20), max_pixels=int(args.max_pixels), queue=args.queue,
                           timeout=float(args.timeout), token=token,
                           hosts=LOOPBACK_NAMES + (args.host,) if _loopback(args.host) else (),
                           header_timeout=float(args.header_timeout), max_connections=args.max_connections)
    say.note(f"serving http://{args.host}:{args.port}/ (API docs at /docs)")
    serve(create_app(engine, limits), args.host, args.port)
    return 0
