-- One MVT layer. Candidates come from an index-friendly && on the buffered tile envelope expressed in
-- the table's own SRID; features below the minimum size are dropped, the biggest are kept first up to
-- the cap, and ST_AsMVTGeom clips and quantizes only those. An empty layer is an empty bytea.
-- Aliases start with an underscore, which catalog field names cannot.
SELECT coalesce(ST_AsMVT(t, {layer}, {extent}, '_geom'), ''::bytea)
FROM (
    SELECT ST_AsMVTGeom({tile_geom}, ST_MakeEnvelope({x0}, {y0}, {x1}, {y1}), {extent}, {buffer}, true) AS _geom,
           {properties}
    FROM (
        SELECT {g} AS _g, {size} AS _size, {columns}
        FROM {table}
        WHERE {geometry} && ST_MakeEnvelope({fx0}, {fy0}, {fx1}, {fy1}, {srid})
    ) AS c
    WHERE c._size >= {min_size}
    ORDER BY c._size DESC, {order_id}
    LIMIT {cap}
) AS t
WHERE t._geom IS NOT NULL
