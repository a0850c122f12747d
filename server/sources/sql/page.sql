-- One page of features as a single JSON array, plus what paging needs.
-- hit: up to limit+1 rows by keyset in the reading order (page_rows in postgis_page.py); page: the
-- first `limit` of them.
-- first_key/last_key: [id, sort key values...] of the first and last feature in the page's order.
WITH hit AS MATERIALIZED (
    {rows}
),
page AS (
    SELECT * FROM hit ORDER BY {order} LIMIT %(limit)s
)
SELECT
    (SELECT count(*) FROM hit) AS found,
    '[' || coalesce(string_agg({feature}, ',' ORDER BY {output_order}), '') || ']' AS features,
    (array_agg(json_build_array({keys}) ORDER BY {output_order}))[1] AS first_key,
    (array_agg(json_build_array({keys}) ORDER BY {reverse_order}))[1] AS last_key
FROM page
