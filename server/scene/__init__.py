"""The 3D scene: CesiumJS at /scene over this server's terrain, imagery, 3D Tiles and vector layers."""
