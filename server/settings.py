"""Server settings, read from the environment (prefix ``ONEMAP_``) when the app is created."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent


def packaged(folder: str) -> Path:
    """The default ``collections``, ``styles`` or ``config`` folder shipped with the server.

    An installed package holds them as ``server/defaults/<folder>`` (see setup.py); a source
    checkout has them at the top of the repository, beside ``server/``.
    """
    installed = PACKAGE_DIR / "defaults" / folder
    return installed if installed.is_dir() else PACKAGE_DIR.parent / folder


class Settings(BaseSettings):
    """Everything a deployment may configure. Built in ``create_app``, never at import."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_", extra="ignore")

    database_url: str | None = Field(
        default=None, description="PostGIS connection URL; the embedded store is used when unset"
    )
    data_dir: Path = Field(
        default=Path("data"), description="Embedded store, rasters and admin store; relative to the working directory"
    )
    collections_dir: Path = Field(default=packaged("collections"), description="Collection YAML files")
    styles_dir: Path = Field(default=packaged("styles"), description="MapLibre style JSON files")
    config_dir: Path = Field(default=packaged("config"), description="Server configuration files (editions.yaml)")
    maplibre_dir: Path = Field(
        default=Path("node_modules/maplibre-gl/dist"),
        description="MapLibre GL JS for the /map viewer (npm's maplibre-gl/dist), relative to the working directory",
    )
    edition: str = Field(default="classified", description="internet, government or classified")
    base_url: str | None = Field(
        default=None, description="Public base URL for links; taken from the request when unset"
    )
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Addresses or CIDR ranges (comma-separated) of the proxies whose header is believed"
    )
    forwarded_header: Literal["x-forwarded-for", "forwarded", "x-real-ip"] = Field(
        default="x-forwarded-for", description="The one header the trusted proxies set to name the client"
    )
    session_ttl_s: int = Field(
        default=8 * 3600, ge=60, description="Lifetime of a browser session (never past its key's end)"
    )
    session_secret: str | None = Field(
        default=None,
        description="Signs session cookies; same on every replica (else from cache_secret, else random per process)",
    )
    max_body_bytes: int = Field(default=1_048_576, ge=0, description="Larger request bodies are refused (413)")
    default_limit: int = Field(default=10, ge=1)
    max_limit: int = Field(default=10_000, ge=1)
    # PostGIS connections per worker. More concurrent queries than the database has cores only
    # lengthens the tail (measured: p99 289 ms with 10 per worker, 76 ms with 2, same throughput).
    pool_min_size: int = Field(default=1, ge=1)
    pool_max_size: int = Field(default=2, ge=1, description="Per worker: workers x this ~ database cores")
    statement_timeout_ms: int = Field(default=15_000, ge=100)
    # -- caching (server/cache) --
    redis_url: str | None = Field(default=None, description="Shared response cache; none when unset")
    redis_timeout_s: float = Field(default=0.25, gt=0, description="Redis connect/read timeout")
    redis_breaker_failures: int = Field(default=3, ge=1, description="Failures before Redis is skipped")
    redis_breaker_cooldown_s: float = Field(default=10.0, gt=0, description="How long Redis is skipped")
    redis_ttl_s: int = Field(default=7 * 86_400, ge=1, description="Lifetime of a shared cache entry")
    cache_memory_bytes: int = Field(
        default=256 * 2**20, ge=0, description="In-process cache bound (bytes) per machine, shared by its workers"
    )
    cache_max_entry_bytes: int = Field(default=8 * 2**20, ge=1, description="Bigger bodies are not cached")
    cache_max_age_s: int = Field(default=60, ge=0, description="Cache-Control max-age of public responses")
    cache_version_ttl_s: float = Field(default=1.0, ge=0, description="How long a data version is trusted")
    cache_secret: str | None = Field(default=None, description="ETag key; random per process when unset")
    cache_namespace: str = Field(default="1", description="Change to drop every shared entry (upgrades)")
    cache_fast_path: bool = Field(default=True, description="Serve anonymous hits before routing")
    cache_debug_header: bool = Field(
        default=False, description="Send X-Cache (hit, hit-shared, miss): it tells a caller what others asked for"
    )
    # API documentation page (/api.html): Swagger UI served from npm, no CDN
    swagger_ui_dir: Path = Field(
        default=Path("node_modules/swagger-ui-dist"),
        description="Swagger UI for /api.html (npm's swagger-ui-dist), relative to the working directory",
    )
    # map labels: SDF glyph PBFs built at install time (make glyphs), served at /fonts/{fontstack}/{range}.pbf
    glyphs_dir: Path = Field(
        default=Path("data/fonts"),
        description="Label glyphs built by 'python -m server.viewer.glyphs', relative to the working directory",
    )

    # -- cross-origin access (server/policy/cors.py) --
    cors_origins: Annotated[tuple[str, ...] | None, NoDecode] = Field(
        default=None,
        description="Origins whose scripts may read responses (comma-separated, or *); unset: * internet, none else",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> tuple[str, ...] | None:
        """``*``, or ``https://a.example, http://localhost:8080`` (scheme, host and port; no path)."""
        if value is None:
            return None
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ValueError("expected origins separated by commas, or *")
        origins = tuple(str(i).strip().rstrip("/") for i in items if str(i).strip())
        for origin in origins:
            if origin != "*" and (not origin.startswith(("http://", "https://")) or "/" in origin.split("://", 1)[1]):
                raise ValueError(f"'{origin}' is not an origin such as https://map.example.org or *")
        return origins
    # the 3D scene (/scene)
    cesium_dir: Path = Field(
        default=Path("node_modules/cesium/Build/Cesium"),
        description="CesiumJS for the /scene page (npm's cesium/Build/Cesium), relative to the working directory",
    )

    # -- per-machine memory budget (server/cache/memory.py) --
    workers: int = Field(
        default=1, ge=1, description="Worker processes sharing the machine's cache budget (onemap serve --workers)"
    )
    # -- durable audit and observability (server/policy/journal.py, server/observability) --
    audit_journal_dir: Path | None = Field(
        default=None,
        description="Local directory of the audit journal (a file per process); <data_dir>/audit-journal when unset",
    )
    audit_flush_s: float = Field(default=0.5, gt=0, description="How often queued audit records are written")
    metrics: Literal["off", "open", "token"] = Field(
        default="off", description="/metrics: off, open (anyone: a private network only) or token (bearer token)"
    )
    metrics_token: str | None = Field(default=None, description="The bearer token /metrics requires (metrics=token)")
    # -- outage (server/cache/versions.py, server/policy/runtime.py) --
    cache_outage_grace_s: float = Field(
        default=300.0, ge=0, description="How long cached answers outlive a database outage (last known versions)"
    )
    key_outage_grace_s: float = Field(
        default=300.0, ge=0, description="How long a verified API key keeps working while the key store is down"
    )
    # -- read replicas (server/pgconn.py): reads on streaming replicas, writes on ONEMAP_DATABASE_URL --
    database_read_urls: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Read replicas (comma-separated URLs, one host each) for features, tiles and lookups"
    )

    @field_validator("database_read_urls", mode="before")
    @classmethod
    def _read_urls(cls, value: object) -> tuple[str, ...]:
        """``postgresql://r1/db,postgresql://r2/db`` (or a sequence) -> the URLs."""
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ValueError("expected PostgreSQL URLs separated by commas")
        return tuple(str(i).strip() for i in items if str(i).strip())

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> tuple[str, ...]:
        """``10.0.0.1, 10.8.0.0/16`` (or a sequence): each an address or range, normalized."""
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ValueError("expected addresses or CIDR ranges separated by commas")
        return tuple(str(ipaddress.ip_network(str(i).strip(), strict=False)) for i in items if str(i).strip())

    @field_validator("forwarded_header", mode="before")
    @classmethod
    def _header_name(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def journal_dir(self) -> Path:
        """Where the audit journal is kept (``audit_journal_dir``, else under the data directory)."""
        return self.audit_journal_dir or self.data_dir / "audit-journal"

    @property
    def gpkg_path(self) -> Path:
        """The embedded GeoPackage store."""
        return self.data_dir / "onemap.gpkg"
