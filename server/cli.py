"""The ``onemap`` command: serve, sample, check-config."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from server.commands.checks import ConfigError, build_settings, startup_problems
from server.settings import Settings
from server.stores import open_store

# uvicorn kills a worker that has not answered its supervisor's ping within this time (its default,
# 5 s, is shorter than a worker's start-up on a loaded machine: workers were killed and restarted in a loop)
WORKER_HEALTHCHECK_S = 30


def _settings(args: argparse.Namespace) -> Settings:
    """The settings from the environment and the command's options; ``ConfigError`` names a bad variable."""
    overrides = {}
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    return build_settings(lambda: Settings(**overrides))


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server with uvicorn (the app is built in each worker from the environment).

    uvicorn's own forwarded-header handling is off (by default it believes ``X-Forwarded-For`` from
    127.0.0.1): the app alone decides, from ``ONEMAP_TRUSTED_PROXIES`` (``--trusted-proxies``), who
    the client is, so key ranges, limits, the audit and the access log agree.
    """
    import os

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from server.observability.logs import log_config
    from server.observability.metrics import MULTIPROC_ENV

    if args.trusted_proxies is not None:
        os.environ["ONEMAP_TRUSTED_PROXIES"] = args.trusted_proxies
    if args.forwarded_header is not None:
        os.environ["ONEMAP_FORWARDED_HEADER"] = args.forwarded_header
    os.environ["ONEMAP_WORKERS"] = str(args.workers)  # the workers share the machine's cache budget
    if args.workers > 1 and not os.environ.get(MULTIPROC_ENV):  # /metrics adds up every worker's samples
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="onemap-metrics-")
    problems = startup_problems(_settings(args))  # before any worker is forked: one message, one exit
    if problems:
        print("error: cannot serve:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    uvicorn.run(
        "server.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=args.access_log,
        proxy_headers=False,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
        timeout_graceful_shutdown=args.graceful_timeout,
        timeout_keep_alive=args.keep_alive_timeout,
        log_config=log_config("json", args.log_level) if args.log_format == "json" else LOGGING_CONFIG,
    )
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    """Generate the sample county into the embedded store (default) or PostGIS."""
    from server.sample import build_sample

    settings = _settings(args)
    store = open_store(settings)
    started = time.perf_counter()
    say = lambda m: print(m, flush=True)  # noqa: E731
    counts = build_sample(args.scale, store, progress=say)
    if args.rasters:
        from server.raster.sample import write_sample_rasters

        counts["raster files"] = len(write_sample_rasters(settings.data_dir, progress=say, sheets=args.sheets))
    for name, n in counts.items():
        print(f"{name:>18}: {n:>9,}")
    print(f"sample written to {store.where} in {time.perf_counter() - started:.1f} s")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate settings, URLs, collection files, editions, the store and every raster asset."""
    from server.commands.checks import config_report

    settings = _settings(args)
    failed = False
    for section, problems in config_report(settings):
        failed = failed or bool(problems)
        for p in problems:
            print(f"{section}: {p}", file=sys.stderr)
        print(f"{section}: ok" if not problems else f"{section}: {len(problems)} problem(s)")
    return 1 if failed else 0


def cmd_seed(args: argparse.Namespace) -> int:
    """Pre-render tiles into the shared cache (see ``server/commands/seed.py``)."""
    from server.commands import seed

    return seed.run(args, _settings(args))


def cmd_overviews(args: argparse.Namespace) -> int:
    """Rebuild tile overviews after edits (see ``server/sources/tile_overviews.py``)."""
    from server.stores.prepare import rebuild_overviews

    ids = [i for part in args.collections or [] for i in part.split(",") if i]
    try:
        built = rebuild_overviews(_settings(args), ids or None, stale_only=args.stale)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"rebuilt {len(built)} overview tables")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    """Create, list or revoke API keys (see ``server/commands/access.py``)."""
    from server.commands import access as commands

    return commands.run_keys(args, _settings(args))


def cmd_audit(args: argparse.Namespace) -> int:
    """Query the audit log (see ``server/commands/access.py``)."""
    from server.commands import access as commands

    return commands.run_audit(args, _settings(args))


def cmd_release(args: argparse.Namespace) -> int:
    """Build a desensitized release bundle for a lower edition (see ``server/release``)."""
    from server.release import commands

    return commands.run_release(args, _settings(args))


def cmd_imagery(args: argparse.Namespace) -> int:
    """Register COG sheets of an imagery acquisition (see ``server/commands/imagery.py``)."""
    from server.commands import imagery

    return imagery.run(args, _settings(args))


def cmd_import(args: argparse.Namespace) -> int:
    """Verify a release bundle and load it into this store (see ``server/release``)."""
    from server.release import commands

    return commands.run_import(args, _settings(args))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="onemap", description="OneMap natural-resources one map server")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the HTTP server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    s.add_argument("--trusted-proxies", metavar="ADDRESSES",
                   help="comma-separated addresses or CIDR ranges of the proxies in front "
                        "(ONEMAP_TRUSTED_PROXIES; default: none, forwarded headers are ignored)")
    s.add_argument("--forwarded-header", choices=("x-forwarded-for", "forwarded", "x-real-ip"),
                   help="the header those proxies set (ONEMAP_FORWARDED_HEADER; default x-forwarded-for)")
    s.add_argument("--log-level", default="info")
    s.add_argument("--no-access-log", dest="access_log", action="store_false")
    s.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="json: one JSON object a line, with the request id (default text)")
    s.add_argument("--graceful-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="on SIGTERM, how long in-flight requests may finish before the worker exits (default 30)")
    s.add_argument("--keep-alive-timeout", type=int, default=5, metavar="SECONDS",
                   help="idle keep-alive connections are closed after this (default 5)")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("sample", help="generate the sample county")
    s.add_argument("--scale", type=int, default=20_000, help="number of parcels (default 20000)")
    s.add_argument("--database-url", help="load into this PostGIS instead of the embedded store")
    s.add_argument("--data-dir", help="directory of the embedded store and rasters")
    s.add_argument("--no-rasters", dest="rasters", action="store_false", help="skip the imagery and DEM COGs")
    s.add_argument("--sheets", type=int, help="imagery sheet grid side: N x N COG sheets per acquisition "
                                              "(default ONEMAP_SAMPLE_SHEETS or 2)")
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("check-config", help="validate the configuration, catalog and store")
    s.add_argument("--database-url")
    s.add_argument("--data-dir")
    s.set_defaults(func=cmd_check_config)

    s = sub.add_parser("overviews", help="rebuild tile overviews after data edits")
    s.add_argument("--collections", nargs="+", help="collection ids (default: every vector collection)")
    s.add_argument("--stale", action="store_true", help="only collections edited since their overviews were built")
    s.add_argument("--database-url")
    s.add_argument("--data-dir")
    s.set_defaults(func=cmd_overviews)

    from server.commands.seed import add_parser as add_seed_parser

    add_seed_parser(sub).set_defaults(func=cmd_seed)

    from server.commands.access import add_parsers as add_policy_parsers
    from server.commands.imagery import add_parser as add_imagery_parser
    from server.release.commands import add_parsers as add_release_parsers

    add_imagery_parser(sub).set_defaults(func=cmd_imagery)
    add_policy_parsers(sub, keys=cmd_keys, audit=cmd_audit)
    add_release_parsers(sub, release=cmd_release, import_=cmd_import)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one ``onemap`` command; a configuration error is one message and exit status 2, no traceback."""
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
