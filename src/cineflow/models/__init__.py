"""Models: architectures in a registry, and losses."""
