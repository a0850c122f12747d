-- One overview (pre-generalized copy) of a collection for one WebMercatorQuad level, in EPSG:3857,
-- built from the source table or from the next finer overview; rows in spatial (Hilbert) order.
DROP TABLE IF EXISTS {overview};
CREATE TABLE {overview} AS
SELECT {columns}, _g AS _geom, _size
FROM (
    SELECT {columns}, _g, {size} AS _size
    FROM (
        SELECT {columns}, ST_SimplifyPreserveTopology({source_geom}, {tolerance}) AS _g
        FROM {source}
        WHERE {source_geometry} IS NOT NULL
    ) AS simplified
) AS sized
WHERE _size >= {min_size} AND NOT ST_IsEmpty(_g)
ORDER BY _g;
CREATE INDEX ON {overview} USING gist (_geom);
ANALYZE {overview};
