"""``maskctl push``: upload a bundle and its model card to a Hugging Face Hub model repo."""

from __future__ import annotations

import typer

from maskctl.cli.console import console


def push(
    bundle: str = typer.Argument(..., help="The *.bundle to upload."),
    repo_id: str = typer.Option(..., "--repo-id", help="The model repo, user/name (created if missing)."),
    revision: str | None = typer.Option(
        None, "--revision", "--branch", help="Branch to commit to (created from main if missing; default main)."
    ),
    private: bool = typer.Option(
        False, "--private", help="Create the repo private (an existing repo keeps its visibility)."
    ),
    commit_message: str | None = typer.Option(None, "--commit-message", help="The commit's title."),
    token: str | None = typer.Option(
        None, "--token", help="A Hub token with write access (default: HF_TOKEN or the saved login)."
    ),
) -> None:
    """Upload a bundle with a generated model card (README.md) to the Hub, in one commit; read it
    back anywhere as hf://user/name."""
    from maskctl.bundle.hub import push_bundle

    pushed = push_bundle(
        bundle, repo_id, revision=revision, private=private, commit_message=commit_message, token=token
    )
    console.print(f"pushed {' and '.join(pushed.files)} to {pushed.commit_url}", highlight=False, soft_wrap=True)
    console.print(f"use it: maskctl predict {pushed.ref} --text '...'", highlight=False, soft_wrap=True)
