-- One GeoJSON Feature as text: concatenated, so the geometry's JSON is never parsed again (a ::json
-- cast or json_build_object over it would validate every coordinate).
'{{"type":"Feature","id":' || to_json({id})::text
    || ',"geometry":' || coalesce(ST_AsGeoJSON({geometry}, {precision}, 0), 'null')
    || ',"properties":' || json_build_object({properties})::text || '}}'
