"""The thin Dagster shell: partitions, resources, assets, checks and jobs that call into core/."""
