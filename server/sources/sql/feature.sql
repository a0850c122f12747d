-- One feature by id, as GeoJSON.
SELECT {feature}
FROM {table}
WHERE {id} = %(id)s AND {kept}
LIMIT 1
