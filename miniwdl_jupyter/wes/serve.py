"""`miniwdl-jupyter wes serve`: run the WES API with uvicorn."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

_logger = logging.getLogger("miniwdl_jupyter.wes")


def add_parser(subparsers: "argparse._SubParsersAction") -> None:
    wes = subparsers.add_parser("wes", help="GA4GH Workflow Execution Service (WES 1.1.0)")
    wes_sub = wes.add_subparsers(dest="wes_command", required=True)
    serve = wes_sub.add_parser("serve", help="serve runs over the WES 1.1.0 API")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (0: any free port; the chosen one is printed)")
    serve.add_argument("--root", default="./wes_runs", help="folder holding one folder per run (default ./wes_runs)")
    serve.add_argument("--token-file", help="file of `TOKEN [USER]` lines; requests then need `Authorization: Bearer TOKEN`, and each user sees only their own runs")
    serve.add_argument("--backends", help="container backends clients may choose, comma-separated (default: the configured one)")
    serve.add_argument("--backend", help="backend for runs that name none (default: [jupyter] backend, resolved; with --submit, the launcher's)")
    serve.add_argument("--submit", default="local", metavar="LAUNCHER",
                       help="where each run's miniwdl process runs: local (default: a process of this server), or a launcher "
                            "such as aws (a Batch head job: the server holds no workflow process) or slurm; --root must then "
                            "be on the filesystem those jobs share")
    serve.add_argument("--max-upload-mb", type=float, default=100.0, help="largest POST /runs body, attachments included (default 100)")
    serve.add_argument("--max-attachments", type=int, default=1000, help="most workflow_attachment files per run (default 1000)")
    serve.set_defaults(handler=serve_main)


def serve_main(args: argparse.Namespace) -> int:
    import uvicorn

    from .. import config
    from ..backend_choice import resolve_backend
    from ..launchers import get_launcher
    from .app import create_app
    from .auth import TokenMap
    from .store import RunStore

    cfg = config.load()
    launcher = get_launcher(args.submit)  # an unknown launcher fails here, naming the installed ones
    chosen = args.backend or config.option(cfg, "jupyter", "backend")
    if chosen in ("", "auto") and launcher.default_backend:
        chosen = launcher.default_backend
    default_backend = resolve_backend(chosen, cfg)
    offered = [b.strip() for b in (args.backends or default_backend).split(",") if b.strip()]
    for name in offered:
        resolve_backend(name, cfg)  # unknown names fail here, naming the installed ones
    if default_backend not in offered:
        offered.insert(0, default_backend)
    tokens = TokenMap.from_file(Path(args.token_file)) if args.token_file else None
    if tokens is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        _logger.warning("serving on %s without --token-file: anyone who can reach it can run commands here", args.host)
    store = RunStore(
        Path(os.path.expanduser(args.root)),
        backends=offered,
        default_backend=default_backend,
        cache_default=config.option(cfg, "jupyter", "cache", "bool"),
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_attachments=args.max_attachments,
        cfg=cfg,
        submit=launcher.name,
    )
    app = create_app(store, tokens)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="info", access_log=False))
    _announce(server)
    server.run()
    return 0


def _announce(server) -> None:  # type: ignore[no-untyped-def]
    """Print the URL once listening (with --port 0 the port is chosen then): tests and scripts read it."""
    original = server.startup

    async def startup(sockets=None):  # type: ignore[no-untyped-def]
        await original(sockets=sockets)
        for s in server.servers:
            for sock in s.sockets:
                host, port = sock.getsockname()[:2]
                print(f"WES listening on http://{host}:{port}/ga4gh/wes/v1", flush=True)

    server.startup = startup
