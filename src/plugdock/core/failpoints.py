"""Named failure points, so tests can break or kill an operation at an exact step.

Off unless ``PLUGDOCK_FAILPOINTS`` is set, e.g. ``install.migrate=raise`` or
``install.registry=kill,uninstall.cleanup=raise``. ``kill`` sends SIGKILL to the
process itself: the honest way to test crash recovery, since nothing gets to clean up.
``wait:<file>`` holds the operation there until that file exists (at most a minute), so a
test can act while an operation is half done; it creates ``<file>.reached`` on arriving, so
the test knows when.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


class InjectedFailure(RuntimeError):
    pass


def failpoint(name: str) -> None:
    """Fail here if the environment asks for it; a no-op otherwise."""
    spec = os.environ.get("PLUGDOCK_FAILPOINTS")
    if not spec:
        return
    for item in spec.split(","):
        point, _, action = item.strip().partition("=")
        if point != name:
            continue
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if action.startswith("wait:"):
            Path(action[5:] + ".reached").touch()
            deadline = time.monotonic() + 60
            while not Path(action[5:]).exists():
                if time.monotonic() > deadline:
                    raise InjectedFailure(f"{name}: {action[5:]} never appeared")
                time.sleep(0.02)
            continue
        raise InjectedFailure(f"injected failure at {name}")
