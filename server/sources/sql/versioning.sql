-- Data versions: one row per collection, bumped by a statement-level trigger on each collection table.
-- New rows start at the epoch in milliseconds so that a rebuilt database does not reuse old tokens.
CREATE TABLE IF NOT EXISTS onemap_versions (
    collection text PRIMARY KEY,
    version bigint NOT NULL
);

CREATE OR REPLACE FUNCTION onemap_bump_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO onemap_versions AS v (collection, version)
    VALUES (TG_ARGV[0], (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
    ON CONFLICT (collection) DO UPDATE SET version = v.version + 1;
    RETURN NULL;
END
$$;
