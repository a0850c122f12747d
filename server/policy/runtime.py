"""The policy's server-side state: the edition's resolver, key lookups, limits, audit and store checks.

Authentication of one request (``authenticate``, or ``authenticate_session`` for a browser
session standing for a key, see ``sessions.py``): no key -> the anonymous policy when the edition
allows it, else 401; a malformed, unknown, revoked or wrong key -> 401; a client address outside
the key's ranges or a time outside its validity window -> 403; over the per-key rate or the daily
quota -> 429 with Retry-After (shared by every worker through Redis when configured, see
``shared_limits.py``). Key records are cached for ``KEY_TTL_S`` seconds, so a revocation
takes effect on every replica within that time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
from typing import Protocol

from cachetools import TTLCache
from psycopg.conninfo import conninfo_to_dict
from starlette.concurrency import run_in_threadpool

from server.cache.breaker import CircuitBreaker
from server.catalog import Catalog
from server.credentials import KEY_HEADER_NAME, KEY_PARAMS
from server.errors import Forbidden, TooManyRequests, Unauthorized, Unavailable
from server.policy.admin import AdminStore
from server.policy.audit import AuditWriter
from server.policy.editions import EditionError, check_against_catalog, load_editions
from server.policy.fingerprint import rules_problem
from server.policy.keys import KeyRecord, parse_key
from server.policy.labels import StoreLabel, label_problem
from server.policy.model import Policy
from server.policy.resolve import PolicyResolver
from server.policy.sessions import SessionSigner
from server.policy.shared_limits import Limits
from server.settings import Settings

log = logging.getLogger("onemap.policy")

KEY_TTL_S = 5.0
OUTAGE_LOG_EVERY_S = 30.0
_UNKNOWN = object()
RETRY_READY_S = 2.0
LABEL_RECHECK_S = 10.0
KEY_HELP = f"Send it in the {KEY_HEADER_NAME} header or the {KEY_PARAMS[0]} query parameter."


def _store_tag(database_url: str | None) -> str:
    """The journal subdirectory of a store: a journal is only ever replayed into the store it was written for."""
    if not database_url:
        return "embedded"
    info = conninfo_to_dict(database_url)
    where = "|".join(str(info.get(k, "")) for k in ("host", "hostaddr", "port", "dbname"))
    return "postgis-" + hashlib.sha256(where.encode()).hexdigest()[:16]


class PolicyStore(Protocol):
    """The part of a store (``server.stores.Store``) the policy uses: its admin tables and its label."""

    def admin(self) -> AdminStore:
        """Keys and audit."""
        ...

    def read_label(self) -> StoreLabel:
        """The edition and rules the store's data was released for."""
        ...


class StoreRefused(EditionError):
    """The store holds data above the edition or was prepared under other rules; the server must not serve it."""


class PolicyRuntime:
    """Everything the policy middleware needs, built once per app (keys and audit in ``store``)."""

    def __init__(self, settings: Settings, catalog: Catalog, store: PolicyStore) -> None:
        self.store = store
        self.editions = load_editions(settings.config_dir)
        problems = check_against_catalog(self.editions, catalog)
        if problems:
            raise EditionError("\n".join(problems))
        self.resolver = PolicyResolver(catalog, self.editions, settings.edition)
        self.edition = settings.edition
        self.spec = self.resolver.spec
        self.admin = store.admin()
        self.audit = AuditWriter(self.admin, interval=settings.audit_flush_s,
                                 journal_dir=settings.journal_dir / _store_tag(settings.database_url))
        breaker = CircuitBreaker("redis limits", settings.redis_breaker_failures, settings.redis_breaker_cooldown_s,
                                 log=log)
        self.limits = Limits(settings.redis_url, settings.redis_timeout_s, breaker, self.spec.limits_without_redis,
                             self._seed_quota)
        self.sessions = SessionSigner(settings)
        self._keys: TTLCache[str, KeyRecord | None] = TTLCache(maxsize=10_000, ttl=KEY_TTL_S)
        self._key_reads: dict[str, asyncio.Future[KeyRecord | None]] = {}
        # verified keys, kept for the outage grace period: used only while the key store is unreachable
        self._verified: TTLCache[str, KeyRecord] = TTLCache(maxsize=10_000, ttl=max(settings.key_outage_grace_s, 1e-3))
        self._outage_logged = 0.0
        self.ready = False
        self.problem: str | None = None
        self._next_try = 0.0
        self._label_due = 0.0

    # -- lifecycle -----------------------------------------------------------------------------

    def _store_problem(self) -> str | None:
        label = self.store.read_label()
        self._label_due = time.monotonic() + LABEL_RECHECK_S
        return label_problem(label, self.edition, self.spec) or rules_problem(
            label, self.resolver.catalog, self.editions, self.edition, self.resolver.base)

    def _prepare(self) -> None:
        self.admin.setup()
        problem = self._store_problem()
        if problem:
            self.problem = problem
            raise StoreRefused(problem)
        self.ready = True

    async def _recheck(self) -> None:
        """Read the store's label again (the store may have been replaced); stop serving on a problem."""
        try:
            problem = await run_in_threadpool(self._store_problem)
        except Exception as exc:  # an unreachable store shows on the reads themselves
            self._label_due = time.monotonic() + LABEL_RECHECK_S  # not asked again by every request meanwhile
            log.warning("store label not readable: %s", exc)
            return
        if problem:
            log.error("refusing to serve: %s", problem)
            self.ready, self.problem = False, problem

    async def start(self) -> None:
        """Create the admin tables and check the store's label; a store above the edition stops start-up."""
        try:
            await run_in_threadpool(self._prepare)
        except StoreRefused:
            raise
        except Exception as exc:  # store unreachable: requests answer 503 until it is back
            log.warning("store not ready at start-up, will retry: %s", exc)
            self._next_try = time.monotonic() + RETRY_READY_S
        self.limits.open()
        self.audit.start()

    async def stop(self) -> None:
        """Write the pending audit records and close the admin connection."""
        await run_in_threadpool(self.audit.stop)
        await self.limits.close()
        self.admin.close()

    async def ensure_ready(self) -> None:
        """Raise ``Unavailable`` until the store has been checked (retried at most every 2 s); the
        store's label is read again every ``LABEL_RECHECK_S`` seconds."""
        if self.ready and time.monotonic() >= self._label_due:
            self._label_due = time.monotonic() + LABEL_RECHECK_S  # one re-check at a time, not one per request
            await self._recheck()
        if self.ready:
            return
        if self.problem is None and time.monotonic() >= self._next_try:
            self._next_try = time.monotonic() + RETRY_READY_S
            try:
                await run_in_threadpool(self._prepare)
                return
            except StoreRefused as exc:
                log.error("refusing to serve: %s", exc)
            except Exception as exc:
                log.warning("store still not ready: %s", exc)
        raise Unavailable("The data store is not available; retry shortly.", retry_after=5)

    # -- callers -------------------------------------------------------------------------------

    async def _seed_quota(self, key_id: str, since: dt.datetime) -> int:
        await run_in_threadpool(self.audit.flush)
        try:
            return await run_in_threadpool(self.admin.count_admitted, key_id, since)
        except Exception as exc:
            log.warning("quota lookup failed: %s", exc)
            raise Unavailable("The key store is not reachable; retry shortly.") from None

    async def _record(self, key_id: str) -> KeyRecord | None:
        cached = self._keys.get(key_id, _UNKNOWN)  # one lookup: the entry may expire between two
        if cached is None or isinstance(cached, KeyRecord):
            return cached
        reading = self._key_reads.get(key_id)
        if reading is None:  # one read per key at a time: requests arriving meanwhile wait for it
            reading = asyncio.ensure_future(self._read_key(key_id))
            self._key_reads[key_id] = reading
            reading.add_done_callback(lambda done: self._key_reads.pop(key_id, None)
                                      and (done.cancelled() or done.exception()))
        return await asyncio.shield(reading)

    async def _read_key(self, key_id: str) -> KeyRecord | None:
        try:
            record = await run_in_threadpool(self.admin.get_key, key_id)
        except Exception as exc:
            known = self._verified.get(key_id)
            if time.monotonic() >= self._outage_logged:  # one line per period, not one per request
                self._outage_logged = time.monotonic() + OUTAGE_LOG_EVERY_S
                log.warning("key lookup failed (keys verified in the last %.0f s still admitted): %s",
                            self._verified.ttl, exc)
            if known is not None:
                self._keys[key_id] = known  # asked again after KEY_TTL_S, not on every request
                return known
            raise Unavailable("The key store is not reachable; retry shortly.") from None
        self._keys[key_id] = record
        if record is not None:
            self._verified[key_id] = record
        return record

    def forget_keys(self) -> None:
        """Drop cached key records (the next request reads them from the store)."""
        self._keys.clear()

    def anonymous(self) -> Policy | None:
        """The anonymous caller's policy, or ``None`` when the edition requires a key."""
        return self.resolver.policy() if self.spec.anonymous else None

    def public_only(self) -> Policy:
        """What pages that need no key see when the edition requires one: no collections."""
        return self.resolver.policy(None, frozenset())

    async def authenticate(self, raw_key: str | None, client_ip: str | None, now: dt.datetime) -> Policy:
        """The caller's policy, or an ``OGCError`` (401, 403, 429) saying what is wrong."""
        if raw_key is None:
            policy = self.anonymous()
            if policy is None:
                raise Unauthorized(f"This server requires an API key. {KEY_HELP}")
            return policy
        return await self.admit(await self.key_record(raw_key), client_ip, now)

    async def key_record(self, raw_key: str) -> KeyRecord:
        """The stored record of a genuine, unrevoked key, or ``Unauthorized``."""
        parsed = parse_key(raw_key)
        record = await self._record(parsed[0]) if parsed else None
        if parsed is None or record is None or record.revoked is not None or not record.matches(parsed[1]):
            raise Unauthorized(f"The API key is not valid. {KEY_HELP}")
        return record

    async def authenticate_session(self, token: str, client_ip: str | None, now: dt.datetime) -> Policy:
        """The policy of the key a session cookie stands for; 401 for a bad, expired or orphaned session."""
        found = self.sessions.verify(token, now)
        record = await self._record(found.key_id) if found else None
        if found is None or record is None or record.revoked is not None or not self.sessions.bound_to(found, record):
            raise Unauthorized(f"The session is not valid or has expired; sign in again. {KEY_HELP}")
        return await self.admit(record, client_ip, now)

    async def open_session(self, raw_key: str, client_ip: str | None, now: dt.datetime) -> tuple[str, int, Policy]:
        """Verify a key as a request would and issue a session for it: (token, max-age in s, policy)."""
        record = await self.key_record(raw_key)
        policy = await self.admit(record, client_ip, now)
        token, max_age = self.sessions.issue(record, now)
        return token, max_age, policy

    async def admit(self, record: KeyRecord, client_ip: str | None, now: dt.datetime) -> Policy:
        """The key's policy once its ranges, window, rate and quota allow this request (else 403/429)."""
        if not record.allows_ip(client_ip):
            raise Forbidden(f"The API key may not be used from address {client_ip}.")
        if (problem := record.window_problem(now)) is not None:
            raise Forbidden(problem)
        if record.rate is not None and (wait := await self.limits.rate(record.id, record.rate)):
            raise TooManyRequests(f"Rate limit of {record.rate:g} requests per second exceeded.", wait)
        if record.daily_quota is not None and (wait := await self.limits.quota(record.id, record.daily_quota, now)):
            raise TooManyRequests(f"Daily quota of {record.daily_quota} requests used up.", wait)
        return self.resolver.policy(record.id, record.scopes)
