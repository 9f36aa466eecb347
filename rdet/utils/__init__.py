"""Small utilities shared across rdet (progress bars)."""
