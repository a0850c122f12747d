-- One layer's branch of overlaps_many.sql: its rows over the site, values as a JSON array, area in m²
-- (measured as in overlaps.sql: a row the site's part contains properly whole, the others intersected).
SELECT {layer} AS layer, to_jsonb({id}) AS id, jsonb_build_array({values}) AS vals,
       (SELECT sum(CASE WHEN ST_ContainsProperly(parts.g, r.g) THEN ST_Area(r.g)
                        ELSE ST_Area(ST_Intersection(r.g, parts.g)) END)
        FROM parts, LATERAL (SELECT ST_Transform(t.seen, parts.zone) AS g OFFSET 0) AS r) AS area_m2
FROM (SELECT t.*, {geometry} AS seen FROM {table} AS t, site
      WHERE t.{geom_column} && ST_Transform(site.g, {srid}) AND ST_Intersects(t.{geom_column}, ST_Transform(site.g, {srid}))
        AND {kept}) AS t
