"""``plugdock user ...``: manage the panel's users from the command line.

Kept apart from ``cli.py`` and light to import (typer only): the heavy parts (argon2,
the database) load only when a ``user`` command runs.
"""

from __future__ import annotations

import sys

import typer


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise typer.BadParameter("no password on standard input", param_hint="--password-stdin")
        return line.rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def register(app: typer.Typer) -> None:
    """Add the ``user`` command group to the ``plugdock`` command."""
    from plugdock.cli.style import HelpStyle

    user_app = typer.Typer(help="Manage the panel's users.", no_args_is_help=True, cls=HelpStyle)

    @user_app.command("create")
    def create(
        username: str = typer.Argument(
            ..., help="a-z, 0-9, '_', '.', '@', '-' (case-insensitive)."
        ),
        role: str = typer.Option("user", "--role", help="admin or user."),
        password_stdin: bool = typer.Option(
            False, "--password-stdin", help="Read the password from the first line of stdin."
        ),
    ) -> None:
        """Create a user (asks for the password twice unless --password-stdin)."""
        from plugdock.config import load_settings
        from plugdock.core.db import make_engine
        from plugdock.errors import UserError
        from plugdock.host import users
        from plugdock.host.passwords import hash_password

        name = users.normalize_username(username)
        if role not in users.ROLES:
            raise UserError(f"invalid role {role!r}: one of {', '.join(users.ROLES)}")
        password = _read_password(password_stdin)
        users.check_password(password)
        password_hash = hash_password(password)
        engine = make_engine(load_settings().db_url)
        try:
            with engine.begin() as conn:
                record = users.create_user(
                    conn, name, password, role=role, actor=None, password_hash=password_hash
                )
                admin_exists = users.has_admin(conn)
        finally:
            engine.dispose()
        typer.echo(f"created user {record.username!r} (role {record.role})")
        if not admin_exists:  # say how the panel gets one: users alone never make an admin
            typer.echo(
                f"no admin yet: the panel's first start creates {users.FIRST_ADMIN!r} "
                "(password PLUGDOCK_ADMIN_PASSWORD, or one it prints once), or make one "
                "now: plugdock user create NAME --role admin",
                err=True,
            )

    @user_app.command("passwd")
    def passwd(
        username: str = typer.Argument(..., help="An existing user."),
        password_stdin: bool = typer.Option(
            False, "--password-stdin", help="Read the password from the first line of stdin."
        ),
    ) -> None:
        """Set a user's password (e.g. a lost admin password)."""
        from plugdock.config import load_settings
        from plugdock.core.db import make_engine
        from plugdock.host import users
        from plugdock.host.passwords import hash_password

        name = users.normalize_username(username)
        password = _read_password(password_stdin)
        users.check_password(password)
        password_hash = hash_password(password)
        engine = make_engine(load_settings().db_url)
        try:
            with engine.begin() as conn:
                users.set_password(conn, name, password, password_hash=password_hash)
        finally:
            engine.dispose()
        typer.echo(f"password of {name!r} changed")

    def _update(username: str, *, role: str | None = None, is_active: bool | None = None) -> str:
        from plugdock.config import load_settings
        from plugdock.core.db import make_engine
        from plugdock.errors import UserNotFoundError
        from plugdock.host import users

        name = users.normalize_username(username)
        engine = make_engine(load_settings().db_url)
        try:
            with engine.begin() as conn:
                record = users.get_by_username(conn, name)
                if record is None:
                    raise UserNotFoundError(f"no user {name!r}")
                users.update_user(conn, record.id, role=role, is_active=is_active)
        finally:
            engine.dispose()
        return name

    @user_app.command("deactivate")
    def deactivate(username: str = typer.Argument(..., help="An existing user.")) -> None:
        """Deactivate a user: they cannot sign in, and their tokens stop working at once."""
        name = _update(username, is_active=False)
        typer.echo(f"deactivated {name!r}; their sessions are ended")

    @user_app.command("activate")
    def activate(username: str = typer.Argument(..., help="An existing user.")) -> None:
        """Let a deactivated user sign in again (old tokens stay revoked)."""
        name = _update(username, is_active=True)
        typer.echo(f"activated {name!r}")

    @user_app.command("role")
    def role(
        username: str = typer.Argument(..., help="An existing user."),
        new_role: str = typer.Argument(..., metavar="ROLE", help="admin or user."),
    ) -> None:
        """Change a user's role (applies to their next request)."""
        from plugdock.errors import UserError
        from plugdock.host import users

        if new_role not in users.ROLES:
            raise UserError(f"invalid role {new_role!r}: one of {', '.join(users.ROLES)}")
        name = _update(username, role=new_role)
        typer.echo(f"{name!r} is now {new_role}")

    @user_app.command("list")
    def list_users() -> None:
        """List the users."""
        from rich.console import Console
        from rich.table import Table

        from plugdock.config import load_settings
        from plugdock.core.db import connect_read, make_engine
        from plugdock.host import users

        engine = make_engine(load_settings().db_url)
        try:
            with connect_read(engine) as conn:
                records = users.list_users(conn)
        finally:
            engine.dispose()
        if not records:
            typer.echo("no users")
            return
        table = Table("id", "username", "role", "active", "created at")
        for record in records:
            table.add_row(
                str(record.id),
                record.username,
                record.role,
                "yes" if record.is_active else "no",
                record.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            )
        Console().print(table)

    app.add_typer(user_app, name="user")
