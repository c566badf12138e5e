"""nasrun's config groups, shipped inside the package as `nasrun.conf` (see pyproject.toml); found with
importlib.resources by `nasrun.config.groups.conf_dir`."""
