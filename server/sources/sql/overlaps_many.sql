-- The rows of several layers overlapping one site, in one statement: the site and its parts per GK zone
-- once, then one branch per layer (overlaps_layer.sql for each, joined by UNION ALL), rows tagged by the layer index.
WITH site AS (
    SELECT ST_GeomFromWKB(%(site)s, 4490) AS g
), parts AS MATERIALIZED (
    SELECT p.zone, ST_Transform(ST_GeomFromWKB(p.wkb, 4490), p.zone) AS g
    FROM unnest(%(parts)s::bytea[], %(zones)s::integer[]) AS p(wkb, zone)
)
{layers}
ORDER BY 1, 2
