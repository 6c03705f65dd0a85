"""Helpers shared by CLI commands that take a subcommand (``nerfvae baseline nerf``,
``nerfvae export mesh``)."""

from __future__ import annotations


def subcommand_usage(
    prog: str, subcommands: dict[str, str], *, placeholder: str, heading: str, help_target: str
) -> str:
    """The usage text of a command with subcommands: ``usage: PROG <placeholder> [options]``, the
    subcommands under ``heading:`` with their one-line descriptions, and a pointer to
    ``PROG <help_target> --help``."""
    lines = [f"usage: {prog} {placeholder} [options]", "", f"{heading}:"]
    lines += [f"  {name:<8} {text}" for name, text in subcommands.items()]
    lines += ["", f"Run `{prog} {help_target} --help` for its options."]
    return "\n".join(lines)


def usage_exit_status(argv: list[str], usage: str) -> int | None:
    """With no arguments or ``-h``/``--help`` first, print ``usage`` and return the exit status
    (0 when help was asked for, 2 when no subcommand was given); otherwise ``None``."""
    if argv and argv[0] not in ("-h", "--help"):
        return None
    print(usage)
    return 0 if argv else 2
