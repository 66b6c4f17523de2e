"""One look for every ``plugdock ... --help``: flags are shown without a ``<bool>`` type.

Typer labels every option with its type; for a flag (``--dry-run``, ``--help``) that
label says nothing. Every ``typer.Typer`` of the command is made with ``cls=HelpStyle``,
which clears it on each command it hands out (and on itself). Argument names follow one
style, set with ``metavar`` where they are declared: upper case nouns such as ``ID``,
``ID[@VERSION]``, ``FOLDER``, ``PACKAGE``, ``USERNAME`` (tests/test_cli.py checks it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from typer.core import TyperGroup, TyperOption

if TYPE_CHECKING:  # typer ships its own copy of click
    from typer._click import Command, Context, HelpFormatter


def plain_flags(command: Command, ctx: Context) -> None:
    """Show ``command``'s flags (``--help`` included) without a type label."""
    for param in command.get_params(ctx):
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""  # typer shows the metavar, when set, instead of "<bool>"


class HelpStyle(TyperGroup):
    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            plain_flags(command, ctx)
        return command

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        plain_flags(self, ctx)
        super().format_help(ctx, formatter)
