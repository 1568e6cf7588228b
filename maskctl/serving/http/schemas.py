"""Request and response bodies of the HTTP API, as pydantic models: they validate requests and
write the OpenAPI page (``/docs``). Inputs and predictions have the shapes of ``maskctl predict``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from maskctl.tasks.kinds.multiple_choice import Choice
from maskctl.tasks.kinds.sequence_classification import Classification
from maskctl.tasks.kinds.token_tagging import Tagging

# A text; a [text, text_pair] pair or a list of words; or an object: {"text"[, "text_pair"]},
# {"tokens": [...]}, {"context", "endings": [...]}. Which fit depends on the task's kind.
Input = str | list[str] | dict[str, Any]
Prediction = Classification | Tagging | Choice
INPUT_HELP = (
    'Classification: "text", ["text", "pair"] or {"text", "text_pair"}; tagging: "text" or a list of '
    'words ({"tokens": [...]}); multiple choice: {"context", "endings": [...]}.'
)


class TaskPredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: list[Input] = Field(
        ...,
        min_length=1,
        description="Inputs for this task. " + INPUT_HELP,
        examples=[["Shares fell in London", "Chelsea won the cup"]],
    )


class MixedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str | None = Field(None, description="A served task (GET /v1/tasks).", examples=["bbc-news"])
    tasks: list[str] | None = Field(
        None,
        min_length=1,
        description="Instead of `task`: the input fanned out to each of these tasks, one result each, in one batch.",
        examples=[["bbc-news", "wnut16"]],
    )
    input: Input = Field(..., description=INPUT_HELP, examples=["Shares fell in London"])

    @model_validator(mode="after")
    def _one_of(self) -> MixedRequest:
        if (self.task is None) == (self.tasks is None):
            raise ValueError('give "task" (one task) or "tasks" (a list: the input fanned out to each)')
        return self

    def fanned(self) -> list[str]:
        return [self.task] if self.task is not None else list(self.tasks)


class MixedPredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: list[MixedRequest] = Field(
        ..., min_length=1, description="Requests of any served tasks, answered in one mixed-task batch where they fit."
    )


class TaskPredictResponse(BaseModel):
    task: str
    predictions: list[Prediction] = Field(
        ...,
        description="One per input, in order; `truncated` says an input "
        "was longer than the bundle's max length and was cut.",
    )


class ErrorDetail(BaseModel):
    code: int
    message: str
    fix: str | None = None
    tasks: list[str] | None = Field(None, description="The served tasks (unknown-task errors).")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class MixedResult(BaseModel):
    task: str
    prediction: Prediction | None = None
    error: ErrorDetail | None = Field(
        None, description="Set instead of `prediction` when the task was unloaded while the request waited."
    )


class MixedPredictResponse(BaseModel):
    results: list[MixedResult]


class TaskInfo(BaseModel):
    name: str
    kind: str
    labels: list[str]
    description: str | None = None
    base_model: str = Field(..., description="The base model the bundle was trained on.")
    metric: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict, description="The bundle's dev metrics (the kept epoch).")
    max_length: int
    sparsity: float | None = None
    bundle: str | None = Field(None, description="The bundle's file name.")
    pinned: bool = Field(
        False, description="Named by serve --pin (deprecated since 0.2.0: every task is hot; removed in 0.3.0)."
    )
    reload_error: str | None = Field(
        None,
        description="Why the bundle's changed file was refused: the last good "
        "version goes on serving until the file is fixed.",
    )


class TaskList(BaseModel):
    tasks: list[TaskInfo]


class Health(BaseModel):
    status: str
    tasks: int


class LoadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bundle: str = Field(..., description="A file name in the served folder.", examples=["news.bundle"])
