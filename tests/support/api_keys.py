"""Issue a real API key into an app's admin store, for tests that call a key-protected edition."""

from __future__ import annotations

from server.policy.keys import KeyRecord, new_key
from server.settings import Settings
from server.stores import open_store


def issue_key(settings: Settings, name: str = "tests", scopes: frozenset[str] | None = None) -> str:
    """A fresh key (every collection unless ``scopes``) stored where the app built from ``settings`` looks."""
    key_id, key, hashed = new_key()
    with open_store(settings).opened_admin() as store:
        store.add_key(KeyRecord(id=key_id, name=name, secret_hash=hashed, scopes=scopes))
    return key
