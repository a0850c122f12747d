-- One layer's branch of overlaps_many.sql: its rows over the site, values as a JSON array, area in m².
SELECT {layer} AS layer, to_jsonb({id}) AS id, jsonb_build_array({values}) AS vals,
       (SELECT sum(ST_Area(ST_Intersection(ST_Transform(t.seen, parts.zone), parts.g))) FROM parts) AS area_m2
FROM (SELECT t.*, {geometry} AS seen FROM {table} AS t, site
      WHERE t.{geom_column} && ST_Transform(site.g, {srid}) AND ST_Intersects(t.{geom_column}, ST_Transform(site.g, {srid}))
        AND {kept}) AS t
