"""One look for every ``plugdock ... --help``: upper-case value names, flags without a type.

Typer names an argument by its Python parameter (``{directory}``, ``{path}``) and labels
every option with its type, ``<bool>`` for a flag (``--dry-run``, ``--help``), which says
nothing. Every ``typer.Typer`` of the command is made with ``cls=HelpStyle``, which, on
each command it hands out (and on itself): clears a flag's label, and names every
argument and option value in upper case. Where the parameter's name is not the best
noun, the declaration sets ``metavar`` itself: ``ID``, ``ID[@VERSION]``, ``FOLDER``,
``PACKAGE`` (a zip), ``URL``, ``NAME`` (tests/cli/test_cli.py checks the style).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from typer.core import TyperArgument, TyperGroup, TyperOption

if TYPE_CHECKING:  # typer ships its own copy of click
    from typer._click import Command, Context, HelpFormatter


def plain_flags(command: Command, ctx: Context) -> None:
    """Name ``command``'s values in upper case; show its flags (``--help`` too) bare."""
    for param in command.get_params(ctx):
        if param.metavar is not None or not isinstance(param, TyperArgument | TyperOption):
            continue
        if isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""  # typer shows the metavar, when set, instead of "<bool>"
        else:
            param.metavar = (param.name or "value").upper()


class HelpStyle(TyperGroup):
    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            plain_flags(command, ctx)
        return command

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        plain_flags(self, ctx)
        super().format_help(ctx, formatter)
