"""What ``onemap keys ...`` and ``onemap audit`` do (``server/cli.py`` only parses arguments).

Each function takes the settings and plain values, prints to the given stream and returns an exit
status: 0 done, 1 nothing matched (unknown key), 2 bad input (the message says which value).
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from dataclasses import asdict
from typing import TextIO

import orjson

from server.catalog import load_catalog
from server.policy.admin import AuditRecord
from server.policy.keys import KeyRecord, new_key, parse_networks, parse_rate, parse_time
from server.settings import Settings
from server.stores import open_store

RELATIVE = re.compile(r"^(\d+)([mhd])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


class CommandError(ValueError):
    """Bad command-line input; the message names the option and the value."""


def _scopes(settings: Settings, collections: str | None) -> frozenset[str] | None:
    if collections is None or collections.strip() == "all":
        return None
    names = [n.strip() for n in collections.split(",") if n.strip()]
    known = load_catalog(settings.collections_dir).ids
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise CommandError(f"--collections: unknown collection {', '.join(unknown) or '(none given)'}; "
                           f"known: {', '.join(known)} (or 'all')")
    return frozenset(names)


def build_key(settings: Settings, name: str, collections: str | None = None, cidrs: list[str] | None = None,
              not_before: str | None = None, not_after: str | None = None, daily_quota: int | None = None,
              rate: str | None = None) -> tuple[KeyRecord, str]:
    """A new key record and the full key, from command-line values (``CommandError`` when bad)."""
    try:
        networks = parse_networks(cidrs or [])
        start, end = parse_time(not_before), parse_time(not_after)
        per_second = parse_rate(rate) if rate is not None else None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if start and end and start >= end:
        raise CommandError("--not-before must be earlier than --not-after")
    if daily_quota is not None and daily_quota < 1:
        raise CommandError("--daily-quota must be a positive number of requests")
    if not name.strip():
        raise CommandError("--name must not be empty")
    key_id, key, hashed = new_key()
    record = KeyRecord(id=key_id, name=name.strip(), secret_hash=hashed, scopes=_scopes(settings, collections),
                       networks=networks, not_before=start, not_after=end, daily_quota=daily_quota, rate=per_second)
    return record, key


def keys_create(settings: Settings, out: TextIO | None = None, **options) -> int:
    """Create and store a key; print it once (only its hash is stored)."""
    out = out or sys.stdout
    try:
        record, key = build_key(settings, **options)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with open_store(settings).opened_admin() as store:
        store.add_key(record)
    print(f"key id: {record.id}", file=out)
    print(f"api key (shown once, store it now): {key}", file=out)
    return 0


def _describe(r: KeyRecord) -> dict:
    def t(v: dt.datetime | None) -> str | None:
        return v.isoformat() if v else None

    return {
        "id": r.id, "name": r.name, "collections": "all" if r.scopes is None else sorted(r.scopes),
        "cidr": list(r.networks), "not_before": t(r.not_before), "not_after": t(r.not_after),
        "daily_quota": r.daily_quota, "rate": r.rate, "created": t(r.created), "revoked": t(r.revoked),
    }


def keys_list(settings: Settings, out: TextIO | None = None, as_json: bool = False) -> int:
    """Print every key (never a secret)."""
    out = out or sys.stdout
    with open_store(settings).opened_admin() as store:
        records = store.list_keys()
    docs = [_describe(r) for r in records]
    if as_json:
        out.write(orjson.dumps(docs, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    for d in docs:
        status = f"revoked {d['revoked']}" if d["revoked"] else "active"
        scope = "all" if d["collections"] == "all" else ",".join(d["collections"])
        print(f"{d['id']}  {d['name']}  collections={scope}  cidr={','.join(d['cidr']) or 'any'}  "
              f"window={d['not_before'] or '-'}..{d['not_after'] or '-'}  quota={d['daily_quota'] or '-'}/day  "
              f"rate={d['rate'] or '-'}/s  {status}", file=out)
    return 0


def keys_revoke(settings: Settings, key_id: str, out: TextIO | None = None) -> int:
    """Revoke a key (it stays listed, marked revoked); 1 when no active key has this id."""
    out = out or sys.stdout
    with open_store(settings).opened_admin() as store:
        done = store.revoke_key(key_id.strip(), dt.datetime.now(dt.UTC))
    if not done:
        print(f"error: no active key with id '{key_id}'", file=sys.stderr)
        return 1
    print(f"revoked {key_id}", file=out)
    return 0


def parse_since(raw: str | None, now: dt.datetime | None = None) -> dt.datetime | None:
    """An ISO date/date-time, or a relative age like ``30m``, ``6h``, ``2d``."""
    if raw is None:
        return None
    m = RELATIVE.match(raw.strip())
    if m:
        now = now or dt.datetime.now(dt.UTC)
        return now - dt.timedelta(**{UNITS[m.group(2)]: int(m.group(1))})
    try:
        return parse_time(raw)
    except ValueError:
        raise CommandError(f"--since: '{raw}' is neither an ISO date-time nor an age like 30m, 6h, 2d") from None


def _row(r: AuditRecord) -> str:
    returned = "-" if r.returned is None else str(r.returned)
    return (f"{r.ts.isoformat(timespec='milliseconds')}  {r.edition}  key={r.key_id or '-'}  ip={r.client_ip or '-'}  "
            f"{r.method} {r.path}{'?' + r.params if r.params else ''}  collection={r.collection or '-'}  "
            f"returned={returned}  status={r.status}  {r.duration_ms or 0:.1f}ms")


def audit_show(settings: Settings, since: str | None = None, key: str | None = None, collection: str | None = None,
               limit: int = 100, as_json: bool = False, out: TextIO | None = None) -> int:
    """Print the newest matching audit records first."""
    out = out or sys.stdout
    try:
        start = parse_since(since)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with open_store(settings).opened_admin() as store:
        records = store.query_audit(start, key, collection, limit)
    if as_json:
        docs = [{**asdict(r), "ts": r.ts.isoformat()} for r in records]
        out.write(orjson.dumps(docs, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for r in records:
            print(_row(r), file=out)
    return 0


def add_parsers(sub, keys, audit) -> None:
    """The ``keys`` and ``audit`` subcommands; ``keys``/``audit`` are the cli's command functions."""
    p = sub.add_parser("keys", help="create, list and revoke API keys")
    p.add_argument("--database-url", help="the PostGIS store (default: the embedded store)")
    p.add_argument("--data-dir", help="directory of the embedded store")
    ks = p.add_subparsers(dest="keys_command", required=True)
    c = ks.add_parser("create", help="create a key (printed once; only its hash is stored)")
    c.add_argument("--name", required=True, help="who or what the key is for")
    c.add_argument("--collections", help="comma-separated collection ids, or 'all' (default)")
    c.add_argument("--cidr", nargs="+", default=[], help="client IP ranges allowed (default: any)")
    c.add_argument("--not-before", help="ISO date-time the key becomes valid")
    c.add_argument("--not-after", help="ISO date-time the key expires")
    c.add_argument("--daily-quota", type=int, help="requests per day (China Standard Time days)")
    c.add_argument("--rate", help="requests per second, e.g. 20/s")
    ls = ks.add_parser("list", help="list keys (never their secrets)")
    ls.add_argument("--json", action="store_true", dest="as_json")
    r = ks.add_parser("revoke", help="revoke a key by id")
    r.add_argument("key_id")
    p.set_defaults(func=keys)

    a = sub.add_parser("audit", help="query the audit log (newest first)")
    a.add_argument("--database-url")
    a.add_argument("--data-dir")
    a.add_argument("--since", help="ISO date-time, or an age like 30m, 6h, 2d")
    a.add_argument("--key", help="key id")
    a.add_argument("--collection", help="collection id")
    a.add_argument("--limit", type=int, default=100)
    a.add_argument("--json", action="store_true", dest="as_json")
    a.set_defaults(func=audit)


def run_keys(args, settings: Settings) -> int:
    """Dispatch ``onemap keys <create|list|revoke>``."""
    if args.keys_command == "create":
        return keys_create(settings, name=args.name, collections=args.collections, cidrs=args.cidr,
                           not_before=args.not_before, not_after=args.not_after,
                           daily_quota=args.daily_quota, rate=args.rate)
    if args.keys_command == "list":
        return keys_list(settings, as_json=args.as_json)
    return keys_revoke(settings, args.key_id)


def run_audit(args, settings: Settings) -> int:
    """``onemap audit``."""
    return audit_show(settings, since=args.since, key=args.key, collection=args.collection,
                      limit=args.limit, as_json=args.as_json)
