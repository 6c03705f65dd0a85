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

from nerfvae.errors import ConfigError, DataError


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


def check_max_scenes(max_scenes: int | None) -> None:
    """ConfigError unless ``--max-scenes`` is None (every scene) or at least 1."""
    if max_scenes is not None and max_scenes < 1:
        raise ConfigError(f"--max-scenes must be at least 1, got {max_scenes}")


def scene_count(max_scenes: int | None, dataset) -> int:
    """How many scenes are scored: the first ``max_scenes`` of the split (every one when None);
    ConfigError for ``max_scenes`` below 1 (:func:`check_max_scenes`)."""
    check_max_scenes(max_scenes)
    return len(dataset) if max_scenes is None else min(max_scenes, len(dataset))


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


REPEAT_RULE = "comma-separated, each at most once"
"""What every flag taking a list of views, context sizes or scenes says about repeats in --help."""


def parse_index_list(
    text: str,
    flag: str,
    *,
    minimum: int = 0,
    limit: int | None = None,
    keywords: tuple[str, ...] = (),
    noun: str = "view",
    extent: str | None = None,
) -> list[int | str]:
    """The one parser of comma-separated lists of views, context sizes or scenes given on the
    command line: ``"1, 3,5"`` -> ``[1, 3, 5]`` in the order given.

    Each entry is an integer ``>= minimum`` (and ``< limit`` when given) or one of ``keywords``
    (lower-cased); a repeated entry is an error, as is an empty list.

    Args:
        flag: the option named by every error (e.g. ``--context``).
        noun: what the integers are (``view``, ``scene``), for the out-of-range error.
        extent: the end of the out-of-range error (default ``the scene has views 0..limit-1``).

    Raises:
        ConfigError: one line naming ``flag`` and ``text``.
    """
    entries: list[int | str] = []
    for part in text.split(","):
        word = part.strip().lower()
        if not word:
            continue
        if word in keywords:
            entries.append(word)
            continue
        try:
            entries.append(int(word))
        except ValueError:
            allowed = " or ".join(f"`{keyword}`" for keyword in keywords)
            raise ConfigError(
                f"{flag} {text!r}: expected comma-separated {noun} indices such as 1,3,5"
                if minimum == 0
                else f"{flag} {text!r}: expected comma-separated integers of at least {minimum}"
                + (f" or {allowed}" if allowed else "")
            ) from None
    if not entries:
        raise ConfigError(f"{flag} is empty: give at least one {noun if minimum == 0 else 'value'}")
    numbers = [entry for entry in entries if isinstance(entry, int)]
    if minimum > 0 and numbers and min(numbers) < minimum:
        raise ConfigError(f"{flag} {text!r}: every value must be at least {minimum}")
    bad = [n for n in numbers if limit is not None and not minimum <= n < limit]
    if bad:
        extent = extent or f"the scene has {noun}s 0..{(limit or 0) - 1}"
        raise ConfigError(f"{flag} {text!r}: {noun}(s) {bad} do not exist; {extent}")
    repeated = sorted({str(entry) for entry in entries if entries.count(entry) > 1})
    if repeated:
        raise ConfigError(f"{flag} {text!r}: {', '.join(repeated)} listed twice ({REPEAT_RULE})")
    return entries


def parse_view_indices(text: str, num_views: int, flag: str = "--context") -> list[int]:
    """View indices ``0 .. num_views - 1`` of a scene (:func:`parse_index_list`)."""
    return [int(view) for view in parse_index_list(text, flag, limit=num_views)]


def parse_context_sizes(text: str, flag: str = "--context") -> tuple[int, ...]:
    """Positive numbers of context views K (:func:`parse_index_list`), in the order given."""
    return tuple(int(k) for k in parse_index_list(text, flag, minimum=1))


def parse_context_labels(text: str) -> list[str]:
    """``"1,2,all"`` -> ``["1", "2", "all"]`` (ConfigError for anything but positive integers and
    ``all``, each at most once)."""
    return [str(k) for k in parse_index_list(text, "--context", minimum=1, keywords=("all",))]


def resolve_context(labels: list[str], num_id_views: int, id_targets: int) -> dict[str, int]:
    """Each label's number of context views, ordered by K (``all`` last among equals); a
    ConfigError when ``all`` leaves no context or a K leaves no ID target / exceeds ``all``."""
    resolved = {label: int(label) for label in labels if label != "all"}
    largest = max(resolved.values(), default=0)
    if "all" in labels:
        if id_targets < 1:
            raise ConfigError(f"--id-targets must be at least 1, got {id_targets}")
        k_all = num_id_views - id_targets
        if k_all < 1:
            raise ConfigError(
                f"`all` with --id-targets {id_targets}: the scenes have only {num_id_views} ID "
                "views, so no context view would remain"
            )
        if largest > k_all:
            raise ConfigError(
                f"K = {largest} exceeds `all` = {k_all} (scenes have {num_id_views} ID views, the "
                f"last {id_targets} are the targets); lower --id-targets or drop that K"
            )
        resolved["all"] = k_all
    elif largest >= num_id_views:
        raise ConfigError(
            f"K = {largest}: scenes have {num_id_views} ID views, at most {num_id_views - 1} can "
            "be context (one must remain as a target)"
        )
    return dict(sorted(resolved.items(), key=lambda item: (item[1], item[0] == "all")))
