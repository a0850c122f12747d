"""Server settings, read from the environment (prefix ``ONEMAP_``) when the app is created."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything a deployment may configure. Built in ``create_app``, never at import."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_", extra="ignore")

    database_url: str | None = Field(
        default=None, description="PostGIS connection URL; the embedded store is used when unset"
    )
    data_dir: Path = Field(default=ROOT / "data", description="Where the embedded store and rasters live")
    collections_dir: Path = Field(default=ROOT / "collections", description="Collection YAML files")
    styles_dir: Path = Field(default=ROOT / "styles", description="MapLibre style JSON files")
    config_dir: Path = Field(default=ROOT / "config", description="Server configuration files")
    edition: str = Field(default="classified", description="internet, government or classified")
    base_url: str | None = Field(
        default=None, description="Public base URL for links; taken from the request when unset"
    )
    default_limit: int = Field(default=10, ge=1)
    max_limit: int = Field(default=10_000, ge=1)
    pool_min_size: int = Field(default=2, ge=1)
    pool_max_size: int = Field(default=10, ge=1)
    statement_timeout_ms: int = Field(default=15_000, ge=100)

    @property
    def gpkg_path(self) -> Path:
        """The embedded GeoPackage store."""
        return self.data_dir / "onemap.gpkg"
