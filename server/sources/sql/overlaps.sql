-- The rows of one layer overlapping a site, each with its overlap in m² measured in the site's GK zone.
WITH site AS (
    SELECT ST_Transform(ST_GeomFromWKB(%(site)s, 4490), {srid}) AS g,
           ST_Transform(ST_GeomFromWKB(%(site)s, 4490), %(zone)s::integer) AS zone
)
SELECT {id}, {values}, ST_Area(ST_Intersection(ST_Transform({geometry}, %(zone)s::integer), site.zone)) AS area_m2
FROM {table} AS t, site
WHERE t.{geom_column} && site.g AND ST_Intersects(t.{geom_column}, site.g) AND {kept}
ORDER BY 1
