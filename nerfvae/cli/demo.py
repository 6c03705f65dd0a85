"""``nerfvae demo``: the main job (placeholder until the shipped model lands)."""

from __future__ import annotations

import sys

DESCRIPTION = "run the end-to-end demo (not yet available: needs the trained model)"


def run(argv: list[str], prog: str) -> int:
    print(
        f"{prog}: the demo will load the shipped NeRF-VAE checkpoint, generate test scenes and write "
        "demo/ with a report of reconstructions, novel views, depth, uncertainty and prior samples.\n"
        "It is not available yet (it arrives with the model and evaluation issues).",
        file=sys.stderr,
    )
    return 1
