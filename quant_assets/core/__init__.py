"""Pure domain logic. Nothing below this package imports dagster."""
