"""A plugin process's log, bounded while it runs: the panel writes it, rotating at a size.

The plugin's stderr (and stdout, which :mod:`plugdock.isolation.child` points there) is a
pipe the panel reads; a thread copies it into ``<id>.log`` through the standard library's
``RotatingFileHandler``: past :data:`~plugdock.isolation.resources.LOG_BYTES` the file
becomes ``<id>.log.1`` (replacing the older one) and a new one starts. A plugin that writes
faster than that only waits on its pipe. The file was the plugin's own descriptor before,
so it grew without bound while the process ran.
"""

from __future__ import annotations

import codecs
import logging
import logging.handlers
import os
import threading
from pathlib import Path

from plugdock.isolation.resources import LOG_BYTES

CHUNK = 64 << 10


def copy_log(fd: int, path: Path, max_bytes: int = LOG_BYTES) -> threading.Thread:
    """Copy what the plugin writes on ``fd`` (a pipe's read end, closed at its end) to
    ``path``, rotating there; a daemon thread, ending when the plugin's side closes."""
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=1, encoding="utf-8", errors="replace"
    )
    handler.terminator = ""  # the text is copied as it came, newlines included
    handler.setFormatter(logging.Formatter("%(message)s"))

    def copy() -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            while chunk := os.read(fd, CHUNK):
                text = decoder.decode(chunk)
                if text:
                    handler.emit(_record(text))
        except OSError:
            pass
        finally:
            os.close(fd)
            handler.close()

    thread = threading.Thread(target=copy, name=f"plugdock-log-{path.stem}", daemon=True)
    thread.start()
    return thread


def _record(text: str) -> logging.LogRecord:
    return logging.LogRecord("plugin", logging.INFO, "", 0, text, None, None)
