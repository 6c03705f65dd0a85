"""The equal-budget comparison table: two runs' `nerfvae eval` JSONs, paired over scenes.

    python docs/results/scene-function/compare.py OUT.md A=EVAL_A.json B=EVAL_B.json [...]

Arguments come in pairs of the same evaluation setting (the same dataset, split, scenes, K and
inference) for model A and model B, e.g. ``planes=p.json attention=a.json planes=p_refined.json
attention=a_refined.json``. For every K, camera kind and metric, the table gives each model's mean
over scenes with its 95% bootstrap interval (nerfvae.statistics, 2,000 resamples, seed 0) and the
paired per-scene difference A − B with its interval; "holds" where that interval excludes zero.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nerfvae.statistics import bootstrap_interval, paired_difference, verdict

METRICS = (("psnr", "PSNR (dB)", "greater"), ("object_psnr", "object PSNR (dB)", "greater"),
           ("ssim", "SSIM", "greater"), ("depth_mae", "depth MAE", "less"))  # fmt: skip


def inference_label(result: dict) -> str:
    steps = result.get("refinement", {}).get("steps", 0)
    return "encoder" if not steps else f"encoder + {steps} test-time steps"


def table(pairs: list[tuple[tuple[str, dict], tuple[str, dict]]]) -> list[str]:
    (name_a, _), (name_b, _) = pairs[0]
    lines = [
        f"| inference | K | cameras | metric | {name_a} | {name_b} | {name_a} − {name_b} "
        "(paired) | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (_, a), (_, b) in pairs:
        if a["per_scene"].keys() != b["per_scene"].keys():
            raise SystemExit("the two evaluations have different K")
        for k, kinds in a["per_scene"].items():
            for kind, metrics in kinds.items():
                for key, label, direction in METRICS:
                    if key not in metrics:
                        continue
                    first, second = metrics[key], b["per_scene"][k][kind][key]
                    difference = paired_difference(first, second)
                    lines.append(
                        f"| {inference_label(a)} | {k} | {kind.upper()} | {label} | "
                        f"{bootstrap_interval(first)} | {bootstrap_interval(second)} | "
                        f"{difference} | {verdict(difference, direction)} |"
                    )
    return lines


def main() -> None:
    out = Path(sys.argv[1])
    named = [arg.split("=", 1) for arg in sys.argv[2:]]
    loaded = [(name, json.loads(Path(path).read_text())) for name, path in named]
    pairs = list(zip(loaded[0::2], loaded[1::2]))
    for (_, a), (_, b) in pairs:
        if (a["dataset"], a["split"], a["num_scenes"]) != (
            b["dataset"],
            b["split"],
            b["num_scenes"],
        ):
            raise SystemExit("compare evaluations of the same scenes")
    first = pairs[0][0][1]
    header = (
        f"{first['num_scenes']} scenes of `{Path(first['dataset']).name}` ({first['split']}), "
        "mean over scenes [95% bootstrap interval over scenes]; the paired column is the "
        "per-scene difference. SSIM and PSNR: higher is better; depth MAE: lower is better."
    )
    lines = [header, "", *table(pairs)]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
