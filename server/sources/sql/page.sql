-- One page of features as a single JSON array, plus what paging needs.
-- hit: up to limit+1 rows by keyset in the paging direction; page: the first `limit` of them.
WITH hit AS MATERIALIZED (
    SELECT {columns}
    FROM {table}
    WHERE {where}
    ORDER BY {id} {direction}
    LIMIT %(probe)s
),
page AS (
    SELECT * FROM hit ORDER BY {id} {direction} LIMIT %(limit)s
)
SELECT
    (SELECT count(*) FROM hit) AS found,
    coalesce(json_agg({feature} ORDER BY {id}), '[]'::json) AS features,
    min({id}) AS first_key,
    max({id}) AS last_key
FROM page
