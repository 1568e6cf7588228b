"""Serving: one resident base model answering many tasks at once.

``model.MaskedModel`` is the API (mixed-task batches, load/unload while serving);
``loading`` is the one loader from a bundle to a model that ``eval``, ``ensemble``, ``export``
and the analyses use too; ``collate`` stacks requests of many tasks into one encoder batch;
``tasks`` is what each loaded task holds; ``memory`` keeps thousands of them coded with a
bounded cache of decoded corrections;
``results`` holds what predictions look like; ``stream`` predicts over JSON-lines files.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from maskctl.serving.model import MaskedModel
    from maskctl.serving.results import RequestError, example_from_input
    from maskctl.tasks.kinds.multiple_choice import Choice
    from maskctl.tasks.kinds.sequence_classification import Classification
    from maskctl.tasks.kinds.token_tagging import Tagging

# Loaded on first use (PEP 562): ``maskctl.serving.http.settings``, which the CLI reads for every
# command's --help, must not pull torch in through this package. The predictions are the kinds'.
_HOMES = {
    "MaskedModel": "maskctl.serving.model",
    "RequestError": "maskctl.serving.results",
    "example_from_input": "maskctl.serving.results",
    "Choice": "maskctl.tasks.kinds.multiple_choice",
    "Classification": "maskctl.tasks.kinds.sequence_classification",
    "Tagging": "maskctl.tasks.kinds.token_tagging",
}
__all__ = ["Choice", "Classification", "MaskedModel", "RequestError", "Tagging", "example_from_input"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'maskctl.serving' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
