"""The ``nerfvae`` command: a thin dispatcher to one module per subcommand.

Each subcommand module exposes ``DESCRIPTION`` (one line for the command list) and
``run(argv: list[str], prog: str) -> int``. Leaf commands parse their arguments with tyro from a
documented dataclass, so every config field and its docstring shows in ``--help``. Only commands
that work are registered here.
"""

from __future__ import annotations

import importlib
import sys

from nerfvae.errors import NerfVAEError

COMMANDS: dict[str, str] = {
    "demo": "nerfvae.cli.demo",
    "data": "nerfvae.cli.data",
    "train": "nerfvae.cli.train",
    "eval": "nerfvae.cli.evaluate",
    "render": "nerfvae.cli.render",
    "sample": "nerfvae.cli.sample",
    "prior": "nerfvae.cli.prior",
    "baseline": "nerfvae.cli.baseline",
    "experiment": "nerfvae.cli.experiment",
    "viewer": "nerfvae.cli.viewer",
    "export": "nerfvae.cli.export",
}


def _usage() -> str:
    lines = ["usage: nerfvae <command> [options]", "", "commands:"]
    for name, module_name in COMMANDS.items():
        description = getattr(importlib.import_module(module_name), "DESCRIPTION", "")
        lines.append(f"  {name:<10} {description}")
    lines += ["", "Run `nerfvae <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:  # `torchrun nerfvae -- train ...` may pass the separator through
        argv = argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from nerfvae import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"nerfvae: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name])
    try:
        return int(module.run(rest, prog=f"nerfvae {name}") or 0)
    except NerfVAEError as error:
        print(f"nerfvae {name}: error: {error}", file=sys.stderr)
        return 1


def entry() -> None:
    """The console script: :func:`main` in a process whose allocator reuses large blocks."""
    from nerfvae.cli.malloc import reexec_with_tuned_malloc

    reexec_with_tuned_malloc()
    sys.exit(main())


if __name__ == "__main__":
    entry()
