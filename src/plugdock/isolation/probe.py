"""Importing a package's backend in a throwaway sandbox, for ``plugdock validate``.

``validate`` checks what a package's router serves, which means importing its backend:
running the package's code. It never does that on the host. :func:`probe_routes` starts
the same plugin process install starts (:mod:`plugdock.isolation.child`, confined by
:mod:`plugdock.isolation.sandbox`), with nothing of any instance in it: no database, no
network, no settings, an empty data folder in the scratch folder; the process imports the
backend, reports its routes and is killed. Without bubblewrap, :func:`sandbox_missing`
says why the checks that run code are skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from plugdock.config import Settings
from plugdock.core.fsutil import make_private_dir
from plugdock.errors import PackageError
from plugdock.isolation.control import ChildProcess
from plugdock.isolation.sandbox import (
    BACKEND,
    Sandbox,
    SandboxUnavailable,
    bwrap,
    launch,
    plugin_user,
)
from plugdock.isolation.spawner import (  # what a root panel's plugin user must open
    RUN_ROOT,
    _hand_over,
)
from plugdock.package.frontend_build import TIMEOUT_SECONDS

# V8 reserves far more address space than it uses: node cannot start under the plugin
# processes' usual limit, so the addon.config probe gets at least this much.
NODE_ADDRESS_SPACE = 4096 << 20


class SandboxedCode:
    """``validate``'s checks that run package code, in sandboxes (a ``CodeRunner``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def routes(self, plugin_id: str, backend_dir: Path) -> list[tuple[str, list[str]]]:
        with _scratch() as scratch:
            return probe_routes(self.settings, plugin_id, backend_dir, scratch)

    def run_node(self, argv: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
        """node with ``folder`` (its script) read-only at /plugin/backend, nothing else of
        the host's to write, no network; argv's mentions of ``folder`` point there."""
        with _scratch() as scratch:
            # A copy others may read: a root panel runs it as a plugin user, and the
            # caller's folder is private to root.
            code = scratch / "code"
            shutil.copytree(folder, code)
            os.chmod(code, 0o755)
            memory = max(self.settings.plugin_memory_mb << 20, NODE_ADDRESS_SPACE)
            sandbox = confined(self.settings, "validate", code, scratch, memory)
            start = launch(sandbox, [arg.replace(str(folder), BACKEND) for arg in argv])
            try:
                return subprocess.run(
                    start.args,
                    preexec_fn=start.preexec,
                    pass_fds=(start.seccomp_fd,),  # bubblewrap reads the filter from it
                    capture_output=True,
                    text=True,
                    timeout=TIMEOUT_SECONDS,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise PackageError(f"node could not run: {exc}") from None
            finally:
                os.close(start.seccomp_fd)


@contextmanager
def _scratch() -> Iterator[Path]:
    """A private folder right in the run root: a root panel's plugin user must be able to
    pass through its parent to the staged folders (:func:`plugdock.isolation.sandbox._stage`)."""
    scratch = Path(tempfile.mkdtemp(prefix="pd-validate-", dir=RUN_ROOT))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def sandbox_missing() -> str | None:
    """None when package code can run confined here; else why not."""
    try:
        bwrap()
    except SandboxUnavailable as exc:
        return str(exc)
    return None


def confined(settings: Settings, plugin_id: str, code: Path, scratch: Path, memory: int) -> Sandbox:
    """A sandbox with ``code`` read-only at /plugin/backend and nothing of an instance: its
    data and run folders are fresh in ``scratch``; never root, no network, no settings."""
    data_dir, run_dir = scratch / "data", scratch / "run"
    make_private_dir(data_dir)
    make_private_dir(run_dir)
    user = None
    if os.geteuid() == 0:  # never root inside, as for an installed plugin
        user = plugin_user(scratch, plugin_id, settings.plugin_uid_base)
    sandbox = Sandbox(
        plugin_id=plugin_id,
        backend_dir=code,
        data_dir=data_dir,
        run_dir=run_dir,
        hidden=settings.home,
        network=False,
        memory_bytes=memory,
        user=user,
    )
    if user is not None:
        _hand_over(sandbox, user)
    return sandbox


def probe_routes(
    settings: Settings, plugin_id: str, backend_dir: Path, scratch: Path
) -> list[tuple[str, list[str]]]:
    """The (path, methods) its router serves, from an import inside a sandbox.

    ``scratch``: a private folder directly in the run root (:func:`_scratch`). Raises
    PluginProcessError with the import's error, SandboxUnavailable without bubblewrap.
    """
    sandbox = confined(settings, plugin_id, backend_dir, scratch, settings.plugin_memory_mb << 20)
    child = ChildProcess(
        plugin_id,
        sandbox,
        scratch / "probe.log",
        {"plugin_id": plugin_id, "token": "validate", "db_url": None},
    )
    try:
        return list(child.routes)
    finally:
        child.kill()
