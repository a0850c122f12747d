"""OGC API Styles: MapLibre style documents per collection and the combined base map."""
