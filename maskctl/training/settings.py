"""Deprecated: ``TrainArgs`` and its fallbacks live in ``maskctl.train_settings`` (outside the
training package, so that a bundle can describe its run without importing the trainer)."""

from __future__ import annotations

from maskctl.deprecation import moved_names

__getattr__ = moved_names(
    __name__,
    dict.fromkeys(
        (
            "CARD_KEYS",
            "CARD_TYPES",
            "DATA",
            "DATA_FIELDS",
            "DEFAULT_LR",
            "DEFAULT_TASK",
            "EVAL",
            "FALLBACKS",
            "KEEP_RULES",
            "MASK",
            "METHODS",
            "OPT",
            "RUN",
            "TASK",
            "TRACKERS",
            "TrainArgs",
            "check_card_defaults",
        ),
        "maskctl.train_settings",
    ),
)
