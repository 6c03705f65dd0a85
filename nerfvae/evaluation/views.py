"""Fixed, documented choice of context and target views per scene (like pixelNeRF's view lists).

For context sizes ``K ∈ context_sizes`` with ``K_max = max(context_sizes)``:

* context views for K: the scene's ID views ``0 .. K-1`` (ID cameras are drawn at random azimuths,
  so the first K are a random but fixed subset);
* ID targets: ID views ``K_max .. num_id_views-1`` — the same for every K, never a context view, so
  numbers for different K are comparable;
* OOD targets: every OOD view.
"""

from __future__ import annotations

from dataclasses import dataclass

from nerfvae.errors import DataError


@dataclass(frozen=True)
class ViewLists:
    context: dict[int, list[int]]
    id_targets: list[int]
    ood_targets: list[int]

    def to_json(self) -> dict:
        return {
            "context": {str(k): v for k, v in self.context.items()},
            "id_targets": self.id_targets,
            "ood_targets": self.ood_targets,
        }


def standard_view_lists(
    num_id_views: int, num_ood_views: int, context_sizes: tuple[int, ...]
) -> ViewLists:
    if not context_sizes or min(context_sizes) < 1:
        raise DataError(f"context sizes must be positive integers, got {context_sizes}")
    largest = max(context_sizes)
    if largest >= num_id_views:
        raise DataError(
            f"scenes have {num_id_views} in-distribution views: at most {num_id_views - 1} can be "
            f"context views (one must remain as a target), but {largest} were asked for"
        )
    return ViewLists(
        context={k: list(range(k)) for k in sorted(context_sizes)},
        id_targets=list(range(largest, num_id_views)),
        ood_targets=list(range(num_id_views, num_id_views + num_ood_views)),
    )
