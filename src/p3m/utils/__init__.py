"""Small helpers shared across the package (devices, files)."""
