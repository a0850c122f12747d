-- The stored extent in CRS84 and the span of the temporal field, over the rows the caller may see.
SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e), t0, t1
FROM (
    SELECT {extent} AS e, {t0} AS t0, {t1} AS t1
    FROM {table}
    WHERE {kept}
) AS s
