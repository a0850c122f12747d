-- One MVT layer. Candidates come from an index-friendly && on the buffered tile envelope expressed in
-- the table's own SRID; features below the minimum size are dropped, the biggest are kept first up to
-- the cap, and ST_AsMVTGeom clips and quantizes only those. An empty layer is an empty bytea.
-- Overview rows are stored snapped to their level's tile grid (sources/tile_overviews.py): when one
-- lies inside the buffered envelope of a WebMercatorQuad tile of that level ({inside} is then
-- `c._g @ envelope`, else `false`), an affine transform and a rounding give its MVT geometry exactly,
-- and only the rows crossing the edge pay for ST_AsMVTGeom's clip and validation.
-- Aliases start with an underscore, which catalog field names cannot.
SELECT coalesce(ST_AsMVT(t, {layer}, {extent}, '_geom'), ''::bytea)
FROM (
    SELECT CASE WHEN {inside} THEN ST_SnapToGrid(ST_Affine(c._g, {sx}, 0, 0, {sy}, {ox}, {oy}), 1)
                ELSE ST_AsMVTGeom({tile_geom}, ST_MakeEnvelope({x0}, {y0}, {x1}, {y1}), {extent}, {buffer}, true)
           END AS _geom,
           {properties}
    FROM (
        SELECT {g} AS _g, {size} AS _size, {columns}
        FROM {table}
        WHERE {geometry} && ST_MakeEnvelope({fx0}, {fy0}, {fx1}, {fy1}, {srid}) AND {kept}
    ) AS c
    WHERE c._size >= {min_size}
    ORDER BY c._size DESC, {order_id}
    LIMIT {cap}
) AS t
WHERE t._geom IS NOT NULL
