"""Print the gain from each added context view, paired per scene, of a `nerfvae eval` JSON:
PSNR at the next K minus PSNR at this K, per kind of target, with its 95% bootstrap interval over
scenes (the JSON's `per_scene` values; every K of the JSON scores the same targets when it was made
with one `--context` list).

    python docs/results/objects-preset/view_gains.py EVAL.json
"""

import itertools
import json
import sys

from nerfvae.statistics import paired_difference

result = json.loads(open(sys.argv[1]).read())
ks = sorted(result["per_scene"], key=int)
for kind in ("id", "ood"):
    for before, after in itertools.pairwise(ks):
        scenes = result["per_scene"]
        gain = paired_difference(scenes[after][kind]["psnr"], scenes[before][kind]["psnr"])
        print(f"{kind.upper()} K {before} -> {after}: {gain} dB")
