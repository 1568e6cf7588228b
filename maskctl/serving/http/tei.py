"""text-embeddings-inference's routes, as a thin shape over the batcher (``answers``): what a
TEI client (or the Hugging Face Inference API's client) sends, answered in its own shape.

* text-embeddings-inference ``POST /predict`` (and ``/{task}/predict``, and TEI's ``POST /`` and
  SageMaker's ``POST /invocations``): ``{"inputs": "text" | ["text", "pair"] | [["a"], ["b",
  "pair"]], "truncate", "raw_scores"}`` answered with the labels sorted by score (a list, or a
  list of lists for a batch), errors as ``{"error", "error_type"}``. The task comes from the path,
  the ``X-Maskctl-Task`` header, or is the only classification task served, so a TEI client
  points at maskctl unchanged. A body with ``parameters`` is the Hugging Face Inference API's
  shape (what ``huggingface_hub.InferenceClient(model=<url>).text_classification`` posts to
  ``/``): answered as that API answers, one list per input, cut to ``top_k``.
* The Open Inference Protocol v2 (KServe, Triton) is ``oip.py``; an error in the shape of the
  route that was asked, ``error_shapes.py``.

Inputs are always cut at the bundle's max length (TEI's ``truncate: true``); ``raw_scores``
(logits) is refused, since served heads answer probabilities.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from maskctl.serving.http.answers import ApiError, json_response

TASK_HEADER = "x-maskctl-task"
TEI_PATHS = ("/predict", "/{task}/predict", "/", "/invocations")
TEI_TYPES = {413: "Validation", 429: "Overloaded", 500: "Backend", 503: "Unhealthy"}


class TeiRequest(BaseModel):
    inputs: str | list[str] | list[list[str]] = Field(
        ..., description="A text, a [text, pair] pair, or a batch of [text] / [text, pair] lists (TEI's shape)."
    )
    truncate: bool = Field(False, description="Accepted; inputs are always cut at the bundle's max length.")
    raw_scores: bool = Field(False, description="Must be false: served heads answer probabilities.")
    truncation_direction: str | None = None
    parameters: dict[str, Any] | None = Field(
        None,
        description="The Hugging Face Inference API's shape "
        "(top_k, function_to_apply: softmax): answered as it answers, "
        "one list of labels per input.",
    )


def add_tei_routes(app: FastAPI, state) -> None:
    def pick(request: Request, task: str | None) -> str:
        name = task or request.headers.get(TASK_HEADER)
        if name:
            return name
        serving = [t for t in state.folder.serving() if state.model.task(t).kind.labels_sequences]
        if len(serving) == 1:
            return serving[0]
        which = "which task? several are served" if serving else "no classification task is served"
        raise ApiError(
            400,
            which,
            f"name it in the header '{TASK_HEADER}: <task>' or the path /<task>/predict, one "
            "of the classification tasks",
            serving,
        )

    async def predict(request: Request, body: TeiRequest, task: str | None = None) -> Response:
        name = pick(request, task)
        a = state.answers
        if not a.served(name).kind.labels_sequences:
            raise ApiError(400, f"task {name!r} is not a classification task", f"use /v1/tasks/{name}/predict")
        if body.raw_scores:
            raise ApiError(400, "raw_scores is not available", "leave raw_scores false: maskctl answers probabilities")
        top_k = _inference_api(body.parameters)
        single = isinstance(body.inputs, str) or all(isinstance(x, str) for x in body.inputs)
        items = [body.inputs] if single else body.inputs
        items = [x if isinstance(x, str) else x[0] if len(x) == 1 else x for x in items]
        if any(isinstance(x, list) and len(x) != 2 for x in items):
            raise ApiError(400, "a sequence is a text or a [text, pair] pair", 'e.g. {"inputs": [["a"], ["b", "c"]]}')
        requests = [(name, item, f"inputs[{i}]") for i, item in enumerate(items)]
        with a.admit(len(items)):
            results, timing = await a.answer(requests, request.receive)
        a.first_error(results)
        ranked = [
            sorted(({"label": k, "score": v} for k, v in r.probabilities.items()), key=lambda p: -p["score"])[:top_k]
            for r in results
        ]
        answer = ranked if body.parameters is not None or not single else ranked[0]
        return await json_response(answer, a.heavy(requests), timing.headers())

    @app.post("/predict", tags=["text-embeddings-inference"])
    async def tei_predict(request: Request, body: TeiRequest) -> Response:
        """TEI's ``/predict``: the task from ``X-Maskctl-Task``, or the one classification task."""
        return await predict(request, body)

    @app.post("/{task}/predict", tags=["text-embeddings-inference"])
    async def tei_predict_task(task: str, request: Request, body: TeiRequest) -> Response:
        """TEI's ``/predict`` for the task named in the path."""
        return await predict(request, body, task)

    @app.post("/", tags=["text-embeddings-inference"])
    async def tei_root(request: Request, body: TeiRequest) -> Response:
        """TEI's ``POST /`` (where ``huggingface_hub.InferenceClient(model=<url>)`` posts): ``/predict``."""
        return await predict(request, body)

    @app.post("/invocations", tags=["text-embeddings-inference"])
    async def tei_invocations(request: Request, body: TeiRequest) -> Response:
        """SageMaker's ``POST /invocations``, as TEI serves it: ``/predict``."""
        return await predict(request, body)


def _inference_api(parameters: dict[str, Any] | None) -> int | None:
    """The ``top_k`` of a Hugging Face Inference API request (None: every label); its
    ``function_to_apply`` can only be softmax, which served heads answer."""
    parameters = parameters or {}
    function = parameters.get("function_to_apply")
    if function not in (None, "softmax"):
        raise ApiError(
            400,
            f"function_to_apply {str(function)[:20]!r} is not available",
            "leave it out, or give softmax: maskctl answers probabilities",
        )
    top_k = parameters.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise ApiError(400, f"top_k {str(top_k)[:20]!r} is not a positive whole number", "give e.g. top_k: 3")
    return top_k
