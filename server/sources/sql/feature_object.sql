json_build_object(
    'type', 'Feature',
    'id', {id},
    'geometry', ST_AsGeoJSON({geometry}, {precision}, 0)::json,
    'properties', json_build_object({properties})
)
