"""The web map viewer (``/map``): MapLibre GL JS over this server's styles and tiles."""
