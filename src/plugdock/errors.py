"""The errors plugdock raises. Each carries a message meant for the person at the terminal."""

from __future__ import annotations


class PlugdockError(Exception):
    """Base of every error plugdock reports to a user."""


class PackageError(PlugdockError):
    """A package (zip or folder) is malformed or unsafe. ``problems`` lists every finding."""

    def __init__(self, problems: list[str] | str, *, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        if len(self.problems) == 1:
            super().__init__(f"{where}{self.problems[0]}")
        else:
            listed = "\n".join(f"  - {p}" for p in self.problems)
            super().__init__(f"{where}{len(self.problems)} problems:\n{listed}")


class UnsafeSqlError(PackageError):
    """A migration statement is not allowed, or cannot be parsed."""

    def __init__(self, file: str, statement: str, reason: str) -> None:
        self.file = file
        self.statement = statement
        self.reason = reason
        short = " ".join(statement.split())
        if len(short) > 120:
            short = short[:117] + "..."
        super().__init__(f"{file}: {reason}: {short!r}")


class NotFoundError(PlugdockError):
    """A plugin or version the source does not have."""


class AlreadyInstalledError(PlugdockError):
    pass


class NotInstalledError(PlugdockError):
    pass


class PermissionsNotGrantedError(PlugdockError):
    """An upgrade asks for permissions the installation was not granted; nothing changed.

    ``added`` lists them (normal forms); the caller grants them by asking again with them.
    """

    def __init__(self, plugin_id: str, version: str, added: list[str]) -> None:
        self.plugin_id = plugin_id
        self.version = version
        self.added = list(added)
        super().__init__(
            f"{plugin_id} {version} asks for permissions it was not granted: "
            f"{', '.join(self.added)}; confirm them to upgrade"
        )


class SourceUnavailableError(PlugdockError):
    """The package source could not be reached or answered badly."""


class LockTimeoutError(PlugdockError):
    pass


class StepError(PlugdockError):
    """A step of an operation failed; everything was rolled back (``left``: what could not be)."""

    def __init__(
        self, operation: str, step: str, cause: BaseException, left: list[str] | None = None
    ) -> None:
        self.operation = operation
        self.step = step
        self.cause = cause
        outcome = (
            f"rolled back, except: {'; '.join(left)}" if left else "rolled back, nothing changed"
        )
        super().__init__(f"{operation} failed at step '{step}': {cause} ({outcome})")
