-- Columns and types of the given tables on the search path; a missing table gives one row with exists = false.
SELECT t.name,
       to_regclass(quote_ident(t.name)) IS NOT NULL AS exists,
       a.attname,
       format_type(a.atttypid, a.atttypmod) AS type
FROM unnest(%(tables)s::text[]) AS t(name)
LEFT JOIN pg_attribute AS a
       ON a.attrelid = to_regclass(quote_ident(t.name))
      AND a.attnum > 0
      AND NOT a.attisdropped
