CREATE OR REPLACE TRIGGER onemap_version
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
FOR EACH STATEMENT EXECUTE FUNCTION onemap_bump_version({collection});

INSERT INTO onemap_versions AS v (collection, version)
VALUES ({collection}, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
ON CONFLICT (collection) DO {on_conflict}
