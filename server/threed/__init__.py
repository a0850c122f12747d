"""3D Tiles 1.1 of extruded footprints (buildings): tileset, glTF content with per-feature metadata."""
