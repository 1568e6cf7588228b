"""``maskctl serve``: every bundle of a folder over HTTP from one resident base model."""

from __future__ import annotations

from maskctl.cli.options import options_from
from maskctl.serving.http.settings import ServeSettings


@options_from(ServeSettings, arguments=("paths",))
def serve(settings: ServeSettings) -> None:
    """Serve every task of a bundle folder (or of bundle files) over HTTP: mixed-task batches,
    hot add/remove of bundles, Prometheus metrics, OpenAPI docs at /docs. With --ray, as
    --replicas replicas of a Ray Serve deployment (locally or on a Ray cluster)."""
    from maskctl.cli.console import console
    from maskctl.errors import MaskctlError
    from maskctl.openmp import prefer_passive_waits

    prefer_passive_waits()  # before torch loads libgomp (maskctl/openmp.py says why)
    try:
        from maskctl.serving.http.run import serve as run_server
    except ImportError as exc:
        raise MaskctlError(
            f"maskctl serve needs {exc.name or 'its server packages'}",
            'install the extra: pip install "maskctl[serve]"',
        ) from None

    def ready(url: str, tasks: list[str]) -> None:
        console.print(
            f"maskctl serving {len(tasks)} task{'s' * (len(tasks) != 1)} on [bold]{url}[/] "
            f"(API docs: {url}/docs): {', '.join(tasks)}",
            highlight=False,
            soft_wrap=True,
        )

    if settings.ray:
        from maskctl.serving.http.ray import serve as run_on_ray

        run_on_ray(settings, on_ready=ready)
        return
    run_server(settings, on_ready=ready)
    _exit_now()


def _exit_now() -> None:
    """End the process at once after a SIGTERM drain (``run_server`` returned, so the drain is
    done and every answer was sent). Why: the interpreter's own teardown of torch and its thread
    pools takes over a second more, and a pod's grace period counts it; nothing is left to save."""
    import logging
    import os
    import sys

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
