"""The errors plugdock raises. Each carries a message meant for the person at the terminal.

One hierarchy, by kind: :class:`PlugdockError` at the root, and below it a few kinds a
caller can act on (the request is unusable, nobody is signed in, not allowed, not found,
in conflict with what is there, too large, a bad package, the source is down, busy, an
operation's step failed). A module raises the specific class below the kind it means;
those used by more than one module are defined here.

No error knows about HTTP. Each HTTP app maps the kinds to statuses in one place, its
exception handlers (``plugdock.host.errors`` for the panel, ``plugdock.server.errors`` for
the plugin server); the command line prints the message on one line.
"""

from __future__ import annotations

# -- the root and the kinds ----------------------------------------------------------------


class PlugdockError(Exception):
    """Base of every error plugdock reports to a user: a refusal, the message says why."""


class InvalidRequestError(PlugdockError):
    """What was asked cannot be used: a field, parameter or body (a package: PackageError)."""


class AuthenticationError(PlugdockError):
    """No credentials came with the request, or they name nobody (any longer)."""


class ForbiddenError(PlugdockError):
    """Who asks may not do this (another publisher's plugin id, a token of the wrong kind)."""


class NotFoundError(PlugdockError):
    """A plugin, version, user or file that is not there."""


class ConflictError(PlugdockError):
    """What is there already refuses it: installed, published, in that state, not granted."""


class TooLargeError(PlugdockError):
    """More bytes than a limit allows (an uploaded package)."""


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


class SourceUnavailableError(PlugdockError):
    """The package source could not be reached or answered badly."""


class LockTimeoutError(PlugdockError):
    """Another operation holds the instance's lock, longer than this one would wait."""


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


# -- invalid requests ----------------------------------------------------------------------


class UserError(InvalidRequestError):
    """A user name, password or role that cannot be used."""


# -- not found -----------------------------------------------------------------------------


class SettingsInvalidError(InvalidRequestError):
    """Plugin settings that break the plugin's schema; ``problems``: setting → message."""

    def __init__(self, plugin_id: str, problems: dict[str, str]) -> None:
        self.problems = problems
        listed = "; ".join(f"{k}: {v}" for k, v in problems.items())
        super().__init__(f"{plugin_id}: invalid settings: {listed}")


class SecretKeyError(PlugdockError):
    """The plugin settings key is malformed or missing, or a secret does not open with it."""


class NotInstalledError(NotFoundError):
    """The plugin is not installed here."""


class UserNotFoundError(NotFoundError):
    """No user of that name or id."""


# -- conflicts -----------------------------------------------------------------------------


class AlreadyInstalledError(ConflictError):
    """The plugin (at that version) is installed already."""


class PermissionsNotGrantedError(ConflictError):
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


class UserExistsError(ConflictError):
    """A user of that name exists already."""


class LastAdminError(ConflictError):
    """The change would leave the panel without an active admin."""


# -- packages ------------------------------------------------------------------------------


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


class SignatureError(PackageError):
    """A package's signature is missing where required, invalid, or by an untrusted key."""


class SignerMismatchError(SignatureError):
    """A package of a plugin id is signed by another key than the one the id is bound to."""


class ToolNotFoundError(PackageError):
    """esbuild (or node) is not on this machine: the plugin is fine, the machine lacks a tool."""


class PluginProcessError(PackageError):
    """The plugin process refused an order, failed, or stopped answering."""


class HandlerTimeout(PluginProcessError, TimeoutError):
    """A handler in a plugin process ran over its bound (a job's run records "timeout")."""


class OwnedElsewhere(PluginProcessError):
    """Another panel worker holds the installation's lock: it runs the process (join it)."""


class ArrivalFailed(PluginProcessError):
    """An arriving plugin's ``on_install``/``on_upgrade`` failed after the commit."""

    def __init__(self, message: str, plugin_id: str, operation: str) -> None:
        super().__init__(message)
        self.plugin_id = plugin_id
        self.operation = operation


class HookTimeoutError(PluginProcessError):
    """A lifecycle hook ran past ``PLUGDOCK_HOOK_TIMEOUT``, or a forced uninstall stopped
    waiting for it: the operation is rolled back."""


class FilterOverran(PluginProcessError):
    """An in-process sync filter ran past its bound: Python cannot stop its thread, so the
    filter is skipped until the plugin is mounted again."""


class FilterVeto(ConflictError):
    """A plugin's filter refused the host's action (``sdk.Veto``): the host shows ``message``.

    ::

        try:
            signup = await host.filters.apply("customer.signup", signup)
        except FilterVeto as veto:
            return {"error": veto.message}          # "this e-mail domain is blocked"
    """

    def __init__(self, plugin_id: str, point: str, message: str) -> None:
        super().__init__(f"{plugin_id} refused {point}: {message}")
        self.plugin_id = plugin_id
        self.point = point
        self.message = message


class UploadRefusedError(PackageError):
    """A plugin server refused an uploaded package: its checks' findings, all of them."""

    def __init__(self, problems: list[str]) -> None:
        PlugdockError.__init__(self, f"the package was refused: {'; '.join(problems)}")
        self.problems = list(problems)
        self.source = None


# -- sources -------------------------------------------------------------------------------


class UntrustedIndexError(SourceUnavailableError):
    """The plugin server's signed index (TUF metadata) failed verification."""
