"""Serving: one resident base model answering many tasks at once.

``model.MaskedModel`` is the API (mixed-task batches, load/unload while serving);
``loading`` is the one loader from a bundle to a model that ``eval``, ``ensemble``, ``export``
and the analyses use too; ``batching`` stacks requests of many tasks into one encoder batch;
``tasks`` is what each loaded task holds; ``memory`` keeps thousands of them coded with a
bounded cache of decoded corrections;
``results`` holds what predictions look like; ``stream`` predicts over JSON-lines files.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from maskctl.serving.model import MaskedModel
    from maskctl.serving.results import Choice, Classification, RequestError, Tagging, example_from_input

# Loaded on first use (PEP 562): ``maskctl.serving.http.settings``, which the CLI reads for every
# command's --help, must not pull torch in through this package.
_HOMES = {"MaskedModel": "model", "Choice": "results", "Classification": "results", "RequestError": "results",
          "Tagging": "results", "example_from_input": "results"}
__all__ = ["Choice", "Classification", "MaskedModel", "RequestError", "Tagging", "example_from_input"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'maskctl.serving' has no attribute {name!r}")
    return getattr(importlib.import_module(f"maskctl.serving.{_HOMES[name]}"), name)
