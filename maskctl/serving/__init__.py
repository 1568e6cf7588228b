"""Serving: one resident base model answering many tasks at once.

``model.MaskedModel`` is the API (mixed-task batches, load/unload while serving);
``loading`` is the one loader from a bundle to a model that ``eval``, ``ensemble``, ``export``
and the analyses use too; ``batching`` stacks requests of many tasks into one encoder batch;
``memory`` keeps thousands of tasks coded with a bounded cache of decoded corrections;
``results`` holds what predictions look like; ``stream`` predicts over JSON-lines files.
"""

from maskctl.serving.model import MaskedModel
from maskctl.serving.results import Choice, Classification, RequestError, Tagging, to_example

__all__ = ["Choice", "Classification", "MaskedModel", "RequestError", "Tagging", "to_example"]
