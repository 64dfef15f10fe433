"""Studies: the thesis's experiments as report stages (edge code: files, tables, plots)."""
