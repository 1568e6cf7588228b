"""Deprecated: ensembles of bundles are a use of bundles, in ``maskctl.experiments.ensemble``."""

from __future__ import annotations

from maskctl.deprecation import moved_names

__getattr__ = moved_names(
    __name__,
    dict.fromkeys(("EnsembleResult", "check_compatible", "combine", "run_ensemble"), "maskctl.experiments.ensemble"),
)
