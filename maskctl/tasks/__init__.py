"""Tasks: YAML task cards (data) + task kinds (code) + readers of on-disk and hub formats.

A card names its kind, its data source, its fields, labels and metric. Cards are found
through the entry-point group ``maskctl.tasks``; the built-in ones register there too.
"""
