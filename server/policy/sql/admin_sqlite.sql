-- Admin tables of the embedded store (a SQLite file beside the GeoPackage).
CREATE TABLE IF NOT EXISTS onemap_api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes      TEXT,
    networks    TEXT NOT NULL DEFAULT '[]',
    not_before  TEXT,
    not_after   TEXT,
    daily_quota INTEGER,
    rate        REAL,
    created     TEXT NOT NULL,
    revoked     TEXT
);

CREATE TABLE IF NOT EXISTS onemap_audit (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    ts          TEXT NOT NULL,
    edition     TEXT NOT NULL,
    key_id      TEXT,
    client_ip   TEXT,
    method      TEXT NOT NULL,
    route       TEXT,
    path        TEXT NOT NULL,
    collection  TEXT,
    params      TEXT,
    returned    INTEGER,
    status      INTEGER NOT NULL,
    duration_ms REAL,
    id          TEXT,
    request_id  TEXT
);
CREATE INDEX IF NOT EXISTS onemap_audit_key_ts ON onemap_audit (key_id, ts);
CREATE INDEX IF NOT EXISTS onemap_audit_ts ON onemap_audit (ts);

CREATE TRIGGER IF NOT EXISTS onemap_audit_no_update BEFORE UPDATE ON onemap_audit
BEGIN SELECT RAISE(ABORT, 'onemap_audit is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER IF NOT EXISTS onemap_audit_no_delete BEFORE DELETE ON onemap_audit
BEGIN SELECT RAISE(ABORT, 'onemap_audit is append-only: DELETE is not allowed'); END;
