"""Declarative, versioned features and the bitemporal point-in-time store."""
