"""Helpers shared by CLI commands: the usage of commands that take a subcommand (``nerfvae
baseline nerf``, ``nerfvae export mesh``) and deprecated flag names."""

from __future__ import annotations

import sys


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


TEST_TIME_FLAGS = {"--refine.": "--test-time.", "--refine-context": "--test-time-context"}
"""Renamed flags of test-time refinement (the old names work for one more release):
``--refine.steps`` -> ``--test-time.steps`` and so on, and the demo's ``--refine-context``."""

ITERATIVE_INFERENCE_FLAGS = {
    "--nerfvae.refinement-steps": "--nerfvae.iterative-inference-steps",
    "--nerfvae.refinement_steps": "--nerfvae.iterative-inference-steps",
    "--nerfvae.refinement-rays": "--nerfvae.iterative-inference-rays",
    "--nerfvae.refinement_rays": "--nerfvae.iterative-inference-rays",
}
"""Renamed flags of the learned iterative inference (the old names work for one more release),
so that "refine" names test-time refinement only."""


def replace_deprecated_flags(argv: list[str], renames: dict[str, str], prog: str) -> list[str]:
    """``argv`` with every flag that starts with a deprecated name in ``renames`` (old prefix ->
    new prefix; ``--old=value`` too) spelled the new way, and a one-line deprecation message on
    stderr for each one used."""
    replaced = []
    for argument in argv:
        name, equals, value = argument.partition("=")
        for old, new in renames.items():
            if name.startswith(old):
                current = new + name[len(old) :]
                print(
                    f"{prog}: {name} is deprecated and will be removed in the next release; "
                    f"use {current}",
                    file=sys.stderr,
                )
                argument = current + equals + value
                break
        replaced.append(argument)
    return replaced
