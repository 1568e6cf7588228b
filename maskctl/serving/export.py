"""Deprecated: exporting a bundle as a plain model is a use of bundles, in
``maskctl.experiments.export``."""

from __future__ import annotations

from maskctl.deprecation import moved_names

__getattr__ = moved_names(
    __name__, dict.fromkeys(("export_bundle", "exported_auto_class"), "maskctl.experiments.export")
)
