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
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from plugdock.errors import HookTimeoutError, PluginProcessError
from plugdock.isolation.plugin_log import copy_log
from plugdock.isolation.protocol import SOCKET_NAME
from plugdock.isolation.sandbox import Sandbox, launch
from plugdock.plugin_code.hook_time import abortable

# bubblewrap's --die-with-parent ends the plugin process when the *thread* that started it
# ends, and the event loop's worker threads end when idle: every plugin process is started
# from this one thread, which lives as long as the panel (or CLI) process.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plugdock-spawn")

START_TIMEOUT = 30.0  # import of the plugin's backend, on a loaded machine
LOG_DRAIN = 5.0  # at most this long for the log of a process that ended to be copied


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
        # Its log goes through the panel, which rotates it (plugdock.isolation.plugin_log).
        log_read, log_write = os.pipe2(os.O_CLOEXEC)
        with listener:
            try:
                start = launch(sandbox, argv)
            except BaseException:
                os.close(log_read)
                os.close(log_write)
                raise
            try:
                self.process = _SPAWNER.submit(
                    subprocess.Popen,
                    start.args,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log_write,
                    preexec_fn=start.preexec,
                    close_fds=True,
                    pass_fds=(listener.fileno(), start.seccomp_fd),
                ).result()
                listeners = start.listeners()  # its egress grants' sockets, for the panel
            except BaseException:
                os.close(log_read)
                raise
            finally:
                os.close(start.seccomp_fd)
                os.close(log_write)
        self._log = copy_log(log_read, log_path)
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

    def hook(
        self, operation: str, version: str, timeout: float, from_version: str | None = None
    ) -> None:
        """Run ``on_<operation>`` in the plugin process; PluginProcessError if it raised.

        Past ``timeout`` seconds, or when a forced uninstall aborts the wait
        (:mod:`plugdock.plugin_code.hook_time`), the process is killed and
        :class:`HookTimeoutError` raised.
        """
        self._send(cmd="hook", operation=operation, version=version, from_version=from_version)
        aborted = threading.Event()

        def abort() -> None:  # from another thread: a signal only, the pipes stay ours
            aborted.set()
            self.interrupt()

        deadline = time.monotonic() + timeout
        try:
            with abortable(self.plugin_id, abort):
                answer = self._answer(timeout, f"running on_{operation}")
        except PluginProcessError as exc:
            self.kill()
            if aborted.is_set():
                raise HookTimeoutError(
                    f"{self.plugin_id}: on_{operation} did not finish: a forced uninstall "
                    "stopped it"
                ) from exc
            if time.monotonic() >= deadline:  # not a crash: out of time
                raise HookTimeoutError(
                    f"{self.plugin_id}: on_{operation} did not finish: it ran past the hook "
                    f"time limit of {timeout:g} s (PLUGDOCK_HOOK_TIMEOUT); its process was "
                    "killed"
                ) from exc
            raise
        if answer.get("event") != "done":
            raise PluginProcessError(f"{self.plugin_id}: {answer.get('error', answer)}")

    def serve(self) -> None:
        """Start serving HTTP on the plugin's socket; returns once it listens."""
        self._send(cmd="serve")
        answer = self._answer(START_TIMEOUT, "starting to serve")
        if answer.get("event") != "serving":
            self.kill()
            raise PluginProcessError(f"{self.plugin_id}: {answer.get('error', answer)}")

    def interrupt(self) -> None:
        """SIGKILL, safe from any thread: the thread waiting on its answer sees it end."""
        if self.process.poll() is None:
            self.process.kill()

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
        if code is not None:  # its last words may still be in the pipe: copied once all its
            self._log.join(LOG_DRAIN)  # processes have closed it (they die with it)
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
