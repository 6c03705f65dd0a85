"""Fixed, documented choice of context and target views per scene (like pixelNeRF's view lists).

For context sizes ``K ∈ context_sizes`` with ``K_max = max(context_sizes)``:

* context views for K: the scene's ID views ``0 .. K-1`` (ID cameras are drawn at random azimuths,
  so the first K are a random but fixed subset);
* ID targets: ID views ``K_max .. num_id_views-1`` — the same for every K, never a context view, so
  numbers for different K are comparable; or, given ``id_targets = N``, the last N ID views, so
  that runs over different sets of K (e.g. a per-scene NeRF made for K = 1, 3 and another for
  K = 2, 5) score the same views and can be merged;
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
    num_id_views: int,
    num_ood_views: int,
    context_sizes: tuple[int, ...],
    id_targets: int | None = None,
) -> ViewLists:
    """The view lists of the module docstring; ``id_targets``: hold out the last N ID views
    (default: every ID view after the largest K).

    Raises:
        DataError: a K is not positive, or a context would include a target view.
    """
    if not context_sizes or min(context_sizes) < 1:
        raise DataError(f"context sizes must be positive integers, got {context_sizes}")
    largest = max(context_sizes)
    if largest >= num_id_views:
        raise DataError(
            f"scenes have {num_id_views} in-distribution views: at most {num_id_views - 1} can be "
            f"context views (one must remain as a target), but {largest} were asked for"
        )
    first_target = largest
    if id_targets is not None:
        if id_targets < 1:
            raise DataError(f"the number of ID targets must be at least 1, got {id_targets}")
        first_target = num_id_views - id_targets
        if largest > first_target:
            raise DataError(
                f"with the last {id_targets} of the scenes' {num_id_views} in-distribution views "
                f"held out as targets, at most {max(first_target, 0)} can be context views, but "
                f"{largest} were asked for"
            )
    return ViewLists(
        context={k: list(range(k)) for k in sorted(context_sizes)},
        id_targets=list(range(first_target, num_id_views)),
        ood_targets=list(range(num_id_views, num_id_views + num_ood_views)),
    )
