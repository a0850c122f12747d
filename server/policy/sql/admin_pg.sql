-- Admin tables of the PostGIS store: API keys and the append-only audit log.
CREATE TABLE IF NOT EXISTS onemap_api_keys (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    secret_hash text NOT NULL,
    scopes      jsonb,
    networks    jsonb NOT NULL DEFAULT '[]',
    not_before  timestamptz,
    not_after   timestamptz,
    daily_quota bigint,
    rate        double precision,
    created     timestamptz NOT NULL DEFAULT now(),
    revoked     timestamptz
);

CREATE TABLE IF NOT EXISTS onemap_audit (
    seq         bigserial PRIMARY KEY,
    ts          timestamptz NOT NULL,
    edition     text NOT NULL,
    key_id      text,
    client_ip   text,
    method      text NOT NULL,
    route       text,
    path        text NOT NULL,
    collection  text,
    params      text,
    returned    bigint,
    status      integer NOT NULL,
    duration_ms double precision,
    id          text,
    request_id  text
);
-- added after the first release: the journal's record id and the request id
ALTER TABLE onemap_audit ADD COLUMN IF NOT EXISTS id text;
ALTER TABLE onemap_audit ADD COLUMN IF NOT EXISTS request_id text;
CREATE UNIQUE INDEX IF NOT EXISTS onemap_audit_id ON onemap_audit (id);
CREATE INDEX IF NOT EXISTS onemap_audit_key_ts ON onemap_audit (key_id, ts);
CREATE INDEX IF NOT EXISTS onemap_audit_ts ON onemap_audit (ts);

CREATE OR REPLACE FUNCTION onemap_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'onemap_audit is append-only: % is not allowed', TG_OP;
END $$;

CREATE OR REPLACE TRIGGER onemap_audit_no_change BEFORE UPDATE OR DELETE ON onemap_audit
    FOR EACH ROW EXECUTE FUNCTION onemap_audit_append_only();
CREATE OR REPLACE TRIGGER onemap_audit_no_truncate BEFORE TRUNCATE ON onemap_audit
    FOR EACH STATEMENT EXECUTE FUNCTION onemap_audit_append_only();
