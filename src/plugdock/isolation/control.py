"""Starting one plugin process in its sandbox and giving it orders (blocking calls).

Used from the installer's thread (import and route checks inside the operation, the
lifecycle hooks) and by the panel's supervisor (serving). See :mod:`plugdock.isolation.child`
for the orders.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from plugdock.errors import PluginProcessError
from plugdock.isolation.protocol import SOCKET_NAME
from plugdock.isolation.sandbox import Sandbox, launch

# bubblewrap's --die-with-parent ends the plugin process when the *thread* that started it
# ends, and the event loop's worker threads end when idle: every plugin process is started
# from this one thread, which lives as long as the panel (or CLI) process.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plugdock-spawn")

START_TIMEOUT = 30.0  # import of the plugin's backend, on a loaded machine
HOOK_TIMEOUT = 120.0


LOG_KEEP = 10 << 20  # a plugin's log is started afresh past this size


def _keep_log_small(path: Path) -> None:
    """A plugin writes its log as it likes; past ``LOG_KEEP`` it starts again (one old copy)."""
    try:
        if path.stat().st_size > LOG_KEEP:
            path.replace(path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


class ChildProcess:
    """One running plugin process and the pipe it answers on."""

    def __init__(
        self,
        plugin_id: str,
        sandbox: Sandbox,
        log_path: Path,
        order: dict[str, Any],
        cleanup: Callable[[], None] = lambda: None,
        egress: Callable[[list[socket.socket]], None] | None = None,
    ):
        self.plugin_id = plugin_id
        self._cleanup: Callable[[], None] | None = cleanup  # once the process is gone
        self.order_token: str = order["token"]  # the installation's module token
        self.sandbox = sandbox
        self.log_path = log_path
        # The panel binds the plugin's listening socket and hands it over as a descriptor:
        # the plugin never creates a file the panel will connect to (it could be a link).
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        socket_path = sandbox.run_dir / SOCKET_NAME
        socket_path.unlink(missing_ok=True)
        listener.bind(str(socket_path))
        listener.listen(128)
        order = {**order, "fd": listener.fileno()}
        argv = [sys.executable, "-m", "plugdock.isolation.child", json.dumps(order)]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        _keep_log_small(log_path)
        with open(log_path, "ab") as log, listener:
            start = launch(sandbox, argv)
            self.process = _SPAWNER.submit(
                subprocess.Popen,
                start.args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                preexec_fn=start.preexec,
                close_fds=True,
                pass_fds=(listener.fileno(),),
            ).result()
            listeners = start.listeners()  # its egress grants' sockets, for the panel
        if egress is not None:
            egress(listeners)
        else:
            for unused in listeners:
                unused.close()
        self._buffer = b""
        self.routes: list[tuple[str, list[str]]] = []
        self.openapi: dict[str, Any] = {}  # the router's OpenAPI paths and schemas
        answer = self._answer(START_TIMEOUT, "importing its backend")
        if answer.get("event") != "loaded":
            self.kill()
            raise PluginProcessError(f"{plugin_id}: {answer.get('error', answer)}")
        self.routes = [(path, methods) for path, methods in answer["routes"]]
        self.openapi = answer.get("openapi") or {}

    @property
    def socket_path(self) -> Path:
        return self.sandbox.run_dir / SOCKET_NAME

    @property
    def pid(self) -> int:
        return self.process.pid

    def _send(self, **order: Any) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps(order) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise PluginProcessError(f"{self.plugin_id}: {self.why_stopped()}") from exc

    def _answer(self, timeout: float, doing: str) -> dict[str, Any]:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise PluginProcessError(
                    f"{self.plugin_id}: no answer after {timeout:.0f} s while {doing}"
                )
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.process.wait()
                    raise PluginProcessError(f"{self.plugin_id}: {self.why_stopped()}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def hook(self, operation: str, version: str, from_version: str | None = None) -> None:
        """Run ``on_<operation>`` in the plugin process; PluginProcessError if it raised."""
        self._send(cmd="hook", operation=operation, version=version, from_version=from_version)
        answer = self._answer(HOOK_TIMEOUT, f"running on_{operation}")
        if answer.get("event") != "done":
            raise PluginProcessError(f"{self.plugin_id}: {answer.get('error', answer)}")

    def serve(self) -> None:
        """Start serving HTTP on the plugin's socket; returns once it listens."""
        self._send(cmd="serve")
        answer = self._answer(START_TIMEOUT, "starting to serve")
        if answer.get("event") != "serving":
            self.kill()
            raise PluginProcessError(f"{self.plugin_id}: {answer.get('error', answer)}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def why_stopped(self) -> str:
        """How the process ended, with the last lines it logged."""
        code = self.process.poll()
        if code is None:
            state = "still running"
        elif code < 0:
            state = f"killed by {signal.Signals(-code).name}"
        elif code == 137 or code == 128 + signal.SIGKILL:
            state = "killed by SIGKILL"
        else:
            state = f"exited with status {code}"
        tail = self.log_tail()
        return f"the plugin process {state}" + (f": {tail}" if tail else "")

    def log_tail(self, lines: int = 3) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(max(0, os.fstat(log.fileno()).st_size - 4096))
                kept = deque(
                    (line for line in log.read().decode(errors="replace").splitlines() if line),
                    maxlen=lines,
                )
        except OSError:
            return ""
        return " | ".join(kept)

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close()

    def _close(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()
        cleanup, self._cleanup = self._cleanup, None
        if cleanup is not None:
            cleanup()
