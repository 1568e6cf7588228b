"""Errors a user can cause, each carrying the one line that says how to fix it.

The CLI prints ``MaskctlError`` as a single line and exits non-zero; anything else is a bug
and keeps its traceback. Library callers catch ``MaskctlError`` the same way.
"""

from __future__ import annotations


class MaskctlError(Exception):
    """A problem with the user's input: a path, a model id, a task, a bundle, a label."""

    exit_code = 2

    def __init__(self, message: str, fix: str | None = None):
        self.message = message
        self.fix = fix
        super().__init__(f"{message}. {fix}" if fix else message)


class SettingError(MaskctlError, ValueError):
    """An option or recipe value outside what the setting accepts (a ``ValueError`` too, for
    library callers that catch that)."""


class BundleError(MaskctlError):
    """A file that is not a valid maskctl bundle, or one that does not fit the base model."""


class DuplicateTask(BundleError):
    """A bundle whose task is already loaded (one bundle per task is served)."""


class TaskError(MaskctlError):
    """An unknown task, a bad task card or data that does not match its card."""


class DatasetScriptOnly(TaskError):
    """A hub dataset that holds only a loading script, which ``datasets`` >= 4 no longer runs,
    and no parquet conversion to read instead."""


class DatasetOffline(TaskError):
    """A hub dataset asked for while offline (or unreachable) that is not in the datasets cache."""


class DatasetNotFound(TaskError):
    """A hub dataset id, configuration, revision or split that does not exist."""


class ModelError(MaskctlError):
    """A model that cannot be found or loaded (missing path, offline hub id, unsupported type)."""


class HubError(MaskctlError):
    """An ``hf://`` bundle reference that is malformed, missing, not cached while offline, or a
    push the Hugging Face Hub refused."""


class MissingPackage(MaskctlError):
    """An option that needs an optional package which is not installed (e.g. ``--report-to
    tensorboard``); raised before any model or data is loaded."""

    def __init__(self, feature: str, package: str):
        self.package = package
        super().__init__(f"{feature} needs the {package} package, which is not installed", f"pip install {package}")


class MissingExtra(MaskctlError):
    """A feature that needs one of maskctl's optional extras (``pip install "maskctl[ray]"``)
    which is not installed; raised before any model or data is loaded."""

    def __init__(self, feature: str, package: str, extra: str):
        self.package, self.extra = package, extra
        super().__init__(
            f"{feature} needs {package}, which is not installed", f'install the extra: pip install "maskctl[{extra}]"'
        )


class TrainingInterrupted(MaskctlError):
    """Ctrl-C during ``maskctl train``: the run's checkpoint was saved and can be resumed."""

    def __init__(self, step: int, total: int, checkpoint: object):
        self.step, self.total, self.checkpoint = step, total, checkpoint
        super().__init__(
            f"interrupted at step {step} of {total}; checkpoint saved in {checkpoint}",
            f"continue with: maskctl train --resume {checkpoint}",
        )
