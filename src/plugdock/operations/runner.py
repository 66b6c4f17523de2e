"""What every operation shares: named steps with failpoints, the commit tail, safe undo.

The commit of the database transaction that changes ``addon_installations`` is the moment
an operation happens: before it every effect is undone, after it only clean-up remains.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

from sqlalchemy import Connection

from plugdock.core.db import bump_generation, utcnow
from plugdock.core.failpoints import failpoint
from plugdock.errors import PackageError, PlugdockError, StepError
from plugdock.instance import audit, jobs, outbox
from plugdock.instance.notify import notify_change
from plugdock.instance.package_store import sweep as sweep_packages
from plugdock.instance.registry import list_installations, write_registry
from plugdock.operations.workspace import Workspace
from plugdock.package.metadata import JobSpec

log = logging.getLogger("plugdock.installer")


class Steps:
    """Remembers the step in progress so an error can name it; each step is a failpoint."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.current = "start"

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.current = name
        failpoint(f"{self.operation}.{name}")
        yield


@dataclass(frozen=True)
class Change:
    """What the audit log says about a committed operation."""

    actor: str | None
    action: str
    plugin_id: str
    version: str
    detail: dict[str, Any] = field(default_factory=dict)
    # The events the plugin handles from now on (metadata.json's "events"); None: unchanged.
    events: Mapping[str, str] | None = None
    # Its scheduled jobs from now on (metadata.json's "jobs"); None: unchanged.
    jobs: Sequence[JobSpec] | None = None


def commit_change(
    conn: Connection, transaction: Any, workspace: Workspace, steps: Steps, change: Change
) -> int:
    """The tail every operation ends with; returns the new plugin-set generation.

    Audit entry, generation bump and PostgreSQL NOTIFY go in the caller's transaction (and
    step); then the registry is rewritten from the rows and the transaction commits.
    """
    audit.record(
        conn,
        actor=change.actor,
        action=change.action,
        plugin_id=change.plugin_id,
        version=change.version,
        detail=change.detail or None,
    )
    if change.action == audit.UNINSTALL:
        outbox.drop_plugin(conn, change.plugin_id)
    elif change.events is not None:
        outbox.set_subscriptions(conn, change.plugin_id, change.events)
    if change.jobs is not None:
        jobs.set_schedules(conn, change.plugin_id, change.jobs, utcnow())
    outbox.emit(  # for plugins that handle plugin.installed & co., with this very commit
        conn,
        outbox.PLUGIN_EVENTS[change.action],
        1,
        {"plugin_id": change.plugin_id, "version": change.version, "actor": change.actor},
        f"plugin:{change.plugin_id}",
    )
    sweep_packages(conn)  # packages no row names any more (an upgrade's or uninstall's old one)
    generation = bump_generation(conn)
    notify_change(conn)
    with steps.step("registry"):
        write_registry(workspace.settings.registry_path, list_installations(conn))
    with steps.step("commit"):
        transaction.commit()
    return generation


def check_still_open(transaction: Any, hook: str) -> None:
    if not transaction.is_active:
        raise PackageError(
            f"the plugin's {hook} ended plugdock's transaction; hooks must not commit"
        )


def safely(undo: Callable[..., Any], *args: object) -> Any:
    """Run an undo; if it fails too, the journal stays and the next command recovers."""
    try:
        return undo(*args)
    except Exception:
        log.exception("rollback did not complete; the journal is kept for recovery")
        return None


def reraise(steps: Steps, exc: BaseException, left: list[str] | None = None) -> NoReturn:
    """Refusals keep their own type (callers map them to 404/409/422); the rest name the step.

    ``left`` lists what the undo could not undo (MariaDB DDL); the message says so.
    """
    if isinstance(exc, PlugdockError) and left:
        exc.args = (f"{exc} (rolled back, except: {'; '.join(left)})",)
    if isinstance(exc, PlugdockError) or not isinstance(exc, Exception):
        raise exc
    raise StepError(steps.operation, steps.current, exc, left) from exc
