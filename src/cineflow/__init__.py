"""cineflow."""
