"""The served folder: bundles added to it are loaded, removed ones dropped, without a restart.

A scan every ``watch_seconds`` compares the folder's ``*.bundle`` files (size and mtime) with
what it saw: a new or changed file is loaded once it has stayed the same for one scan (so a
copy still being written is not read half-way); a bundle that fails (corrupt, another base
model, a task already served) is refused with one log line naming it and retried only when the
file changes; every other task keeps serving. A changed file of a served task is loaded beside
the running version, which answers until the new one has passed every check and is swapped in;
if it fails, the last good version goes on serving (Triton's rule), and the log, ``/v1/tasks``
(``reload_error``) and the metrics say so. A removed task first stops taking new requests,
waits for its queued and running inputs, then is unloaded. Names from requests (the admin
endpoints) resolve only to files directly inside the folder.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
from pathlib import Path
from stat import S_ISDIR, S_ISREG

from maskctl.errors import BundleError, MaskctlError
from maskctl.serving.model import MaskedModel

log = logging.getLogger("maskctl.serve")
Stat = tuple[int, int]  # (mtime_ns, size)


class BundleFolder:
    """Keeps ``model``'s tasks in step with ``folder`` (or with fixed ``files`` when no folder)."""

    def __init__(self, model: MaskedModel, folder: Path | None, compute, metrics=None) -> None:
        self.model, self.folder, self.compute, self.metrics = model, folder, compute, metrics
        self.batcher = None  # set once the event loop runs: removals wait for its queued inputs
        self.root = folder.resolve() if folder else None
        self.loaded: dict[Path, str] = {}  # bundle file -> its task
        self.seen: dict[Path, Stat] = {}  # the file's state when last loaded or refused
        self.candidates: dict[Path, Stat] = {}  # new or changed files, waiting to stay the same
        self.refused: dict[Path, str] = {}
        self.reload_failed: dict[Path, str] = {}  # a served file's refused new version: the old one serves
        self.draining: set[str] = set()  # tasks being removed: no new requests
        self.folder_here = True  # the folder could be listed at the last scan
        self._lock = asyncio.Lock()  # one change at a time

    def adopt(self, path: Path, task: str) -> None:
        """Record a bundle loaded with the model itself (the one that named the base model)."""
        self._loaded(_key(path), _stat(path), task)

    def serving(self) -> list[str]:
        """The tasks that take requests: loaded and not being removed."""
        return [t for t in self.model.tasks if t not in self.draining]

    def path_of(self, task: str) -> Path | None:
        return next((p for p, name in self.loaded.items() if name == task), None)

    def resolve(self, name: str) -> Path:
        """A bundle file named by a request, inside the served folder and nowhere else."""
        if self.root is None:
            raise MaskctlError("no folder is served", "start the server with a folder: maskctl serve masks/ --admin")
        refused = MaskctlError(
            f"{name[:80]!r} is not a bundle file name in the served folder", "give the file name only, e.g. news.bundle"
        )
        if (
            not name
            or "\x00" in name
            or len(name.encode("utf-8", "surrogatepass")) > 255
            or "/" in name
            or "\\" in name
        ):
            raise refused  # a NUL, or longer than any file system's name: no such file can exist
        entry = self.root / name
        problem = entry_problem(entry)
        if problem == DANGLING:
            raise NotInFolder(f"{name} {problem}", ENTRY_FIX)
        if problem is not None and problem != GONE:  # a link loop, a FIFO, a folder, ...
            raise MaskctlError(f"{name} {problem}", ENTRY_FIX)
        try:
            candidate = entry.resolve()
        except (OSError, RuntimeError, ValueError):
            raise refused from None
        if candidate.parent != self.root or candidate.suffix != ".bundle":
            raise refused
        if problem is not None:
            raise NotInFolder(f"no file {name!r} in the served folder", "copy the bundle there first")
        return candidate

    async def load(self, path: Path) -> str:
        """Load one bundle on the compute thread; raises ``MaskctlError``."""
        async with self._lock:
            return await self._load(_key(path))

    async def unload(self, task: str) -> None:
        async with self._lock:
            await self._unload(task)

    async def scan(self) -> None:
        """Load new or changed bundles that stayed the same since the last scan; drop removed."""
        if self.root is None or not self._folder_here():
            return
        current = {_key(p): _stat(p) for p in self.root.glob("*.bundle")}
        async with self._lock:
            for path in [p for p in self.loaded if p not in current]:
                log.info("bundle %s removed: unloading task %s", path.name, self.loaded[path])
                await self._unload(self.loaded[path])
            for path, stat in current.items():
                if self.seen.get(path) == stat:
                    continue
                if self.candidates.get(path) != stat:
                    self.candidates[path] = stat  # load it when it stays the same until the next scan
                    continue
                del self.candidates[path]
                try:
                    await self._load(path)
                except MaskctlError:
                    pass  # logged; retried when the file changes
            for path in set(self.seen) - set(current):
                self.seen.pop(path, None)
                self.refused.pop(path, None)
                self.reload_failed.pop(path, None)

    def _folder_here(self) -> bool:
        """Whether the served folder can be listed; one log line when it stops being so and one
        when it is back. Meanwhile its tasks keep serving: a folder that vanishes at once is
        more often an unmounted volume than bundles removed (and an unlistable folder looks
        empty, which would unload every task)."""
        here = os.access(self.root, os.R_OK | os.X_OK) and self.root.is_dir()
        if here != self.folder_here:
            if here:
                log.info("the served folder %s is back: watching its bundles again", self.root)
            else:
                log.warning(
                    "the served folder %s is missing or cannot be listed: its %d tasks keep serving until it returns",
                    self.root,
                    len(self.loaded),
                )
            self.folder_here = here
        return here

    async def watch(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.scan()
            except Exception:
                log.exception("scanning %s failed", self.root)

    async def _load(self, path: Path) -> str:
        """Load a new file, or a served file's new version beside the running one."""
        stat, replaces = _stat(path), self.loaded.get(path)
        try:
            if entry_problem(path) is not None:  # never opened: a FIFO would block the compute thread
                raise OSError(path.name)
            task = await asyncio.get_running_loop().run_in_executor(self.compute, self.model.load, path, replaces)
        except Exception as exc:  # noqa: BLE001 - whatever a file does, it is refused alone
            public = self.refuse(path, exc, stat)
            if replaces is not None:
                self.reload_failed[path] = public.message
                log.warning("task %s keeps serving its last good version (%s was refused)", replaces, path.name)
                self._count("reload_failed")
            raise public from None
        if replaces is not None:
            self.reload_failed.pop(path, None)
            if replaces != task:
                log.info("task %s was replaced by task %s (%s changed)", replaces, task, path.name)
            self._count("reloaded")
        return self._loaded(path, stat, task)

    def load_now(self, path: Path) -> str | None:
        """At startup, before the event loop runs: load or refuse (logged), never raise."""
        path = _key(path)
        stat = _stat(path)
        try:
            if entry_problem(path) is not None:
                raise OSError(path.name)
            task = self.compute.submit(self.model.load, path).result()
        except Exception as exc:  # noqa: BLE001
            self.refuse(path, exc, stat)
            return None
        return self._loaded(path, stat, task)

    def _loaded(self, path: Path, stat: Stat, task: str) -> str:
        self.seen[path] = stat
        self.refused.pop(path, None)
        self.loaded[path] = task
        log.info("serving task %s from %s", task, path.name)
        self._count("loaded")
        return task

    def refuse(self, path: Path, exc: Exception | None, stat: Stat | None = None) -> MaskctlError:
        """Record a bundle that did not load (one log line; not tried again until the file
        changes) and return the error a client may see: no machine path in it. An entry that is
        no readable file (``entry_problem``), or could not be read, says so in that line; anything
        else but a ``MaskctlError`` is a bundle nothing can read as one: refused the same way,
        its traceback in the log."""
        path = _key(path)
        problem = entry_problem(path)
        if problem is not None:
            public = BundleError(f"{path.name} {problem}", ENTRY_FIX)
        elif isinstance(exc, OSError):  # read as the file changed or went: the file system's words, no traceback
            public = BundleError(f"{path.name} cannot be read ({exc.strerror or type(exc).__name__})", ENTRY_FIX)
        elif isinstance(exc, MaskctlError):
            public = type(exc)(text_without_paths(exc.message), exc.fix and text_without_paths(exc.fix))
        else:
            log.error("loading %s failed", path.name, exc_info=exc)
            public = BundleError(
                f"{path.name} cannot be loaded ({type(exc).__name__})",
                "check the file (maskctl inspect), or train it again",
            )
        self.seen[path] = stat or _stat(path)
        self.refused[path] = public.message
        log.warning("refused bundle %s: %s%s", path.name, public.message, f" ({public.fix})" if public.fix else "")
        self._count("refused")
        return public

    async def _unload(self, task: str) -> None:
        self.draining.add(task)
        try:
            if self.batcher is not None:
                await self.batcher.drained(task)
            await asyncio.get_running_loop().run_in_executor(self.compute, self.model.unload, task)
        finally:
            self.draining.discard(task)
        for path in [p for p, name in self.loaded.items() if name == task]:
            del self.loaded[path]
        log.info("unloaded task %s", task)
        self._count("unloaded")

    def _count(self, event: str) -> None:
        if self.metrics:
            self.metrics.bundle_events.labels(event).inc()
            self.metrics.tasks_loaded.set(len(self.model.tasks))


# An absolute path (not the tail of a URL or of a relative path): what a client must not see of
# the server's disk. Each becomes its last part, the file or folder name.
_ABSOLUTE = re.compile(r"(?<![\w:/.~-])/(?:[^\s'\"(),:/]+/)*([^\s'\"(),:/]+)")


def text_without_paths(text: str) -> str:
    """``text`` with every absolute path cut to its last part (an error a client reads)."""
    return _ABSOLUTE.sub(lambda m: m.group(1), text)


class NotInFolder(MaskctlError):
    """A bundle name that names no file of the served folder (404 on the admin route)."""


def _stat(path: Path) -> Stat:
    """The file's (mtime, size); a link that leads nowhere, its own (mtime, -1): it changes
    when the link is replaced."""
    try:
        st = path.stat()
    except OSError:
        try:
            return (path.lstat().st_mtime_ns, -1)
        except OSError:
            return (0, -1)
    return (st.st_mtime_ns, st.st_size)


def _key(path: Path) -> Path:
    """The path a bundle file is known by: resolved, or as it is when it leads nowhere (a loop,
    a dangling link)."""
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError):
        return path.absolute()


GONE, DANGLING = "is gone", "is a link to nothing"
ENTRY_FIX = "replace it with a bundle file, or remove it"


def entry_problem(path: Path) -> str | None:
    """Why a ``*.bundle`` entry of the folder is no bundle file anyone can open, or None. Asked
    before opening it: a symbolic link loop or a dangling link would fail with an ``OSError``
    (``Path.resolve()`` raises ``RuntimeError`` for a loop), and a FIFO would block the reader."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return DANGLING if path.is_symlink() else GONE
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link loop"
        return f"cannot be read ({exc.strerror or type(exc).__name__})"
    if not S_ISREG(st.st_mode):
        return "is not a regular file" + (" (a folder)" if S_ISDIR(st.st_mode) else "")
    if not os.access(path, os.R_OK):
        return "cannot be read (permission denied)"
    return None
