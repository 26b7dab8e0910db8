"""`pistachio serve`: the generation API on 127.0.0.1 (by default) until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .api import create_app
    from .service import load_service

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    service = load_service(args.params, args.set, **overrides)
    s = service.settings
    try:
        down = service.check()  # a workflow that does not fit the servers stops here, before anything listens
    except BaseException:
        service.close()
        raise
    if down:
        print(f"not reachable yet (retried as jobs come): {', '.join(down)}", flush=True)
    print(f"serving http://{s.host}:{s.port} (docs /docs) for workflows {', '.join(service.workflows)}; "
          f"jobs in {service.store.path}", flush=True)
    uvicorn.run(create_app(service), host=s.host, port=s.port, log_level="info", timeout_graceful_shutdown=5)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="the generation API for a chatbot: POST /v1/generations -> ComfyUI",
                           description="Serve the generation API. Keys come from PISTACHIO_API_KEYS (name:key,...) "
                                       "or the serve: section's keys_file (0600); jobs live in a SQLite file.")
    serve.add_argument("--params", required=True, help="params profile: its 06_batch_generation and serve: sections")
    serve.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one 06_batch_generation parameter")
    serve.add_argument("--host", default=None, help="address to bind (default: the profile's, else 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default: the profile's, else 8000)")
    serve.set_defaults(func=cmd_serve)
