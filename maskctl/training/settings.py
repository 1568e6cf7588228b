"""``TrainArgs`` and its fallbacks, at the import path they always had.

They are declared in ``maskctl.train_settings``, outside the training package, because a
bundle's model card rebuilds the run's command line from them and ``maskctl.bundle`` never
imports ``maskctl.training`` (tests/test_layering.py); this module keeps the old path working.
"""

from __future__ import annotations

from maskctl.train_settings import (
                                    CARD_KEYS,
                                    CARD_TYPES,
                                    DATA,
                                    DATA_FIELDS,
                                    DEFAULT_LR,
                                    DEFAULT_TASK,
                                    EVAL,
                                    FALLBACKS,
                                    KEEP_RULES,
                                    MASK,
                                    METHODS,
                                    OPT,
                                    RUN,
                                    TASK,
                                    TRACKERS,
                                    TrainArgs,
                                    check_card_defaults,
)

__all__ = ["CARD_KEYS", "CARD_TYPES", "DATA", "DATA_FIELDS", "DEFAULT_LR", "DEFAULT_TASK", "EVAL", "FALLBACKS",
           "KEEP_RULES", "MASK", "METHODS", "OPT", "RUN", "TASK", "TRACKERS", "TrainArgs", "check_card_defaults"]
