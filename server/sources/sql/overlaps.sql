-- The rows of one layer overlapping a site, each with its overlap in m²: the site's part in each GK zone
-- it crosses (one part unless it crosses a zone boundary) measured in its own zone, and the parts summed.
-- The rows are those meeting the site (index, then a prepared-geometry test); a row the part contains
-- properly is measured whole (another prepared test, far cheaper than an intersection), the others are
-- intersected first.
WITH site AS (
    SELECT ST_Transform(ST_GeomFromWKB(%(site)s, 4490), {srid}) AS g
), parts AS MATERIALIZED (
    SELECT p.zone, ST_Transform(ST_GeomFromWKB(p.wkb, 4490), p.zone) AS g
    FROM unnest(%(parts)s::bytea[], %(zones)s::integer[]) AS p(wkb, zone)
)
SELECT {id}, {values},
       (SELECT sum(CASE WHEN ST_ContainsProperly(parts.g, r.g) THEN ST_Area(r.g)
                        ELSE ST_Area(ST_Intersection(r.g, parts.g)) END)
        FROM parts, LATERAL (SELECT ST_Transform(t.seen, parts.zone) AS g OFFSET 0) AS r) AS area_m2
FROM (SELECT t.*, {geometry} AS seen FROM {table} AS t, site
      WHERE t.{geom_column} && site.g AND ST_Intersects(t.{geom_column}, site.g) AND {kept}) AS t
ORDER BY 1
