"""research stage."""
