"""A loopback stand-in for the Hugging Face Hub: the few routes huggingface_hub 2.x calls to
create a repo and a branch, commit files (README validation, preupload, commit) and to list and
download them (tree, resolve). Files are kept in memory; every request is recorded so tests can
check what maskctl sent. It listens on 127.0.0.1 only, on a free port, and never forwards.

Dataset repos (``add_dataset``) answer the read-only routes ``datasets.load_dataset`` 5.x calls
through huggingface_hub when ``HF_ENDPOINT`` points here: ``/datasets/<repo>/resolve/<rev>/<file>``
and ``/api/datasets/<repo>`` (``revision``, ``tree``, ``paths-info``), on any branch, such as
the Hub's parquet conversion ``refs/convert/parquet``. The dataset viewer
(``datasets-server.<host>``) is not served: ``datasets`` treats its absence as "no export"."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from typing_extensions import Self


def _sha(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class FakeHub:
    """``with FakeHub() as hub:`` serves at ``hub.url``; ``hub.files(repo)`` is what was committed."""

    def __init__(self, refuse_writes: int | None = None):
        self.repos: dict[str, dict] = {}  # repo -> {"private", "branches": {name: sha}, "commits": {sha: files}}
        self.requests: list[tuple[str, str]] = []
        self.commits: list[dict] = []  # each commit's header and file paths, in order
        self.refuse_writes = refuse_writes  # an HTTP status for every write (e.g. 401)
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                hub._dispatch(self, "HEAD")

            def do_GET(self):
                hub._dispatch(self, "GET")

            def do_POST(self):
                hub._dispatch(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    # -- state -----------------------------------------------------------------------------
    def add_repo(self, repo: str, files: dict[str, bytes] | None = None) -> str:
        """A repo whose main branch holds ``files``; returns the commit."""
        with self._lock:
            self.repos[repo] = {"private": False, "branches": {}, "commits": {}}
            return self._commit(repo, "main", dict(files or {}))

    def add_dataset(
        self, repo: str, files: dict[str, bytes] | None = None, branches: dict[str, dict[str, bytes]] | None = None
    ) -> dict[str, str]:
        """A dataset repo whose main branch holds ``files`` and each of ``branches`` (e.g.
        ``{"refs/convert/parquet": {...}}``) its own files; returns each branch's commit. A repo
        without ``files`` has an empty main branch."""
        key = f"datasets/{repo}"
        with self._lock:
            self.repos[key] = {"private": False, "branches": {}, "commits": {}}
            commits = {"main": self._commit(key, "main", dict(files or {}))}
            for branch, content in (branches or {}).items():
                commits[branch] = self._commit(key, branch, dict(content))
            return commits

    def dataset_requests(self, repo: str) -> list[tuple[str, str]]:
        """The requests that named dataset ``repo`` (API and file routes)."""
        return [(m, p) for m, p in self.requests if f"/datasets/{repo}/" in unquote(p) + "/"]

    def files(self, repo: str, revision: str = "main") -> dict[str, bytes]:
        entry = self.repos[repo]
        return entry["commits"][entry["branches"][revision]]

    def _commit(self, repo: str, branch: str, files: dict[str, bytes]) -> str:
        entry = self.repos[repo]
        sha = hashlib.sha1(
            json.dumps({p: _sha(d) for p, d in sorted(files.items())}).encode() + str(len(entry["commits"])).encode()
        ).hexdigest()
        entry["commits"][sha] = files
        entry["branches"][branch] = sha
        return sha

    # -- HTTP --------------------------------------------------------------------------------
    def _dispatch(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        path = [unquote(p) for p in parts.path.split("/") if p]
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0)) if method == "POST" else b""
        with self._lock:
            self.requests.append((method, parts.path))
            status, headers, payload = self._route(method, path, body, parse_qs(parts.query))
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        request.send_response(status)
        for key, value in {"Content-Type": "application/json", **headers}.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        if method != "HEAD":
            request.wfile.write(data)

    def _route(self, method: str, path: list[str], body: bytes, query: dict[str, list[str]] | None = None):
        if method == "POST" and self.refuse_writes:
            return self.refuse_writes, {}, {"error": "Invalid credentials in Authorization header"}
        if method == "POST" and path == ["api", "repos", "create"]:
            spec = json.loads(body)
            repo = f"{spec['organization']}/{spec['name']}"
            if repo in self.repos:
                return 409, {}, {"error": "You already created this model repo", "url": f"{self.url}/{repo}"}
            self.repos[repo] = {"private": spec.get("visibility") == "private", "branches": {}, "commits": {}}
            self._commit(repo, "main", {".gitattributes": b"*.bundle filter=lfs diff=lfs merge=lfs -text\n"})
            return 200, {}, {"url": f"{self.url}/{repo}", "name": repo}
        if method == "POST" and path == ["api", "validate-yaml"]:
            return 200, {}, {"errors": [], "warnings": []}
        if path[:2] == ["api", "models"] and len(path) >= 6:
            repo, action, revision = f"{path[2]}/{path[3]}", path[4], "/".join(path[5:])
            if repo not in self.repos:
                return 404, {"X-Error-Code": "RepoNotFound"}, {"error": "Repository not found"}
            return self._repo_api(method, repo, action, revision, body)
        if len(path) >= 6 and path[0] == "datasets" and path[3] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(f"datasets/{path[1]}/{path[2]}", path[4], "/".join(path[5:]))
        if path[:2] == ["api", "datasets"] and len(path) >= 4:
            return self._dataset_api(method, f"datasets/{path[2]}/{path[3]}", path[4:], query, body)
        if len(path) >= 5 and path[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(f"{path[0]}/{path[1]}", path[3], "/".join(path[4:]))
        return 404, {}, {"error": f"no route {method} /{'/'.join(path)}"}

    def _repo_api(self, method: str, repo: str, action: str, revision: str, body: bytes):
        branches = self.repos[repo]["branches"]
        if method == "POST" and action == "branch":
            if revision in branches:
                return 409, {}, {"error": "Reference already exists"}
            branches[revision] = branches["main"]
            return 200, {}, {}
        if revision not in branches:
            return 404, {"X-Error-Code": "RevisionNotFound"}, {"error": f"Invalid rev id: {revision}"}
        if method == "POST" and action == "preupload":
            files = json.loads(body)["files"]
            return (
                200,
                {},
                {
                    "files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None} for f in files
                    ]
                },
            )
        if method == "POST" and action == "commit":
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            header = next(item["value"] for item in lines if item["key"] == "header")
            files = dict(self.files(repo, revision))
            for item in lines:
                if item["key"] == "file":
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            sha = self._commit(repo, revision, files)
            self.commits.append({"header": header, "paths": [i["value"]["path"] for i in lines if i["key"] == "file"]})
            return 200, {}, {"commitUrl": f"{self.url}/{repo}/commit/{sha}", "commitOid": sha, "success": True}
        if method == "GET" and action == "tree":
            return (
                200,
                {},
                [
                    {"type": "file", "path": p, "size": len(d), "oid": _sha(d)}
                    for p, d in sorted(self.files(repo, revision).items())
                ],
            )
        return 404, {}, {"error": f"no route {method} {action}"}

    def _dataset_api(self, method: str, repo: str, rest: list[str], query: dict[str, list[str]] | None, body: bytes):
        """``GET /api/datasets/<repo>[/revision/<rev>]``, ``GET .../tree/<rev>[/<path>]`` and
        ``POST .../paths-info/<rev>``, read-only."""
        if repo not in self.repos:
            return 404, {"X-Error-Code": "RepoNotFound"}, {"error": "Repository not found"}
        action = rest[0] if rest else "revision"
        revision = rest[1] if len(rest) > 1 else "main"
        commit = self._commit_of(repo, revision)
        if commit is None:
            return 404, {"X-Error-Code": "RevisionNotFound"}, {"error": f"Invalid rev id: {revision}"}
        files = self.repos[repo]["commits"][commit]
        if method == "GET" and action == "revision":
            return (
                200,
                {},
                {
                    "id": repo.removeprefix("datasets/"),
                    "sha": commit,
                    "private": False,
                    "disabled": False,
                    "gated": False,
                    "tags": [],
                    "siblings": [{"rfilename": p, "size": len(d)} for p, d in sorted(files.items())],
                },
            )
        if method == "GET" and action == "tree":
            prefix = "/".join(rest[2:]).strip("/")
            recursive = (query or {}).get("recursive", ["false"])[0].lower() == "true"
            return 200, {}, self._tree(files, prefix, recursive)
        if method == "POST" and action == "paths-info":
            wanted = parse_qs(body.decode()).get("paths", [])
            entries = {e["path"]: e for e in self._tree(files, "", True)}
            return 200, {}, [entries[p.strip("/")] for p in wanted if p.strip("/") in entries]
        return 404, {}, {"error": f"no route {method} {action}"}

    @staticmethod
    def _tree(files: dict[str, bytes], prefix: str, recursive: bool) -> list[dict]:
        """The entries under ``prefix`` (files and the folders they imply), as the Hub lists them."""
        below = {p: d for p, d in files.items() if not prefix or p.startswith(prefix + "/")}
        entries: dict[str, dict] = {}
        for path, data in sorted(below.items()):
            rel = path[len(prefix) + 1 :] if prefix else path
            parts = rel.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(([prefix] if prefix else []) + parts[:depth])
                if recursive or depth == 1:
                    entries.setdefault(folder, {"type": "directory", "path": folder, "oid": _sha(folder.encode())})
            if recursive or len(parts) == 1:
                entries[path] = {"type": "file", "path": path, "size": len(data), "oid": _sha(data)}
        return list(entries.values())

    def _commit_of(self, repo: str, revision: str) -> str | None:
        entry = self.repos[repo]
        return entry["branches"].get(revision) or (revision if revision in entry["commits"] else None)

    def _resolve(self, repo: str, revision: str, filename: str):
        if repo not in self.repos:
            return 404, {"X-Error-Code": "RepoNotFound"}, {"error": "Repository not found"}
        branches = self.repos[repo]["branches"]
        commit = branches.get(revision) or (revision if revision in self.repos[repo]["commits"] else None)
        if commit is None:
            return 404, {"X-Error-Code": "RevisionNotFound"}, {"error": "Revision not found"}
        files = self.repos[repo]["commits"][commit]
        if filename not in files:
            return 404, {"X-Error-Code": "EntryNotFound"}, {"error": "Entry not found"}
        data = files[filename]
        headers = {"X-Repo-Commit": commit, "ETag": f'"{_sha(data)}"', "Content-Type": "application/octet-stream"}
        return 200, headers, data
