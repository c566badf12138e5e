"""Search spaces. Each option of the `space` config group names one space class by `_target_`."""
