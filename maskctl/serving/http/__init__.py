"""``maskctl serve``: every task of a bundle folder over HTTP from one resident base model.

``settings`` (``ServeSettings``: every option once), ``run`` (load bundles, run uvicorn, drain on
SIGTERM), ``app`` (FastAPI routes and error bodies), ``batcher`` (dynamic mixed-task batches off
the event loop), ``folder`` (hot add/remove of bundles), ``guard`` (API key, body limit, request
metrics), ``metrics`` (Prometheus), ``schemas`` (request/response models, the OpenAPI page).
Needs the ``serve`` extra: ``pip install "maskctl[serve]"``.
"""
