"""point_mlp: the planes MLP in cache-sized blocks equals the plain composition of its modules."""

import pytest
import torch
from torch import nn

from nerfvae.models import point_mlp as point_mlp_module
from nerfvae.models.point_mlp import point_mlp, point_mlp_reference


def _mlp(depth: int, view_dependent: bool, features=5, encoded=7, width=12, directions=9):
    torch.manual_seed(depth)
    trunk = [nn.Linear(features + encoded, width)]
    trunk += [nn.Linear(width, width) for _ in range(depth - 1)]
    density_head = nn.Linear(width, 1)
    colour_hidden = nn.Linear(width + (directions if view_dependent else 0), 6)
    colour_head = nn.Linear(6, 3)
    return trunk, density_head, colour_hidden, colour_head


def _inputs(rows: int, view_dependent: bool):
    generator = torch.Generator().manual_seed(rows)
    features = torch.randn(rows, 5, generator=generator, requires_grad=True)
    encoded = torch.randn(rows, 7, generator=generator)
    directions = torch.randn(rows, 9, generator=generator) if view_dependent else None
    return features, encoded, directions


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("view_dependent", [True, False])
@pytest.mark.parametrize("onednn", [True, False])
def test_blocked_mlp_equals_the_modules(monkeypatch, depth, view_dependent, onednn):
    # blocks of 16 rows: 37 rows make two full blocks and a partial one
    monkeypatch.setattr(point_mlp_module, "BLOCK_ROWS", 16)
    monkeypatch.setattr(
        point_mlp_module, "_ONEDNN_LINEAR", onednn and point_mlp_module._ONEDNN_LINEAR
    )
    modules = _mlp(depth, view_dependent)
    features, encoded, directions = _inputs(37, view_dependent)
    with torch.no_grad():
        density, colour = point_mlp(features, encoded, directions, *modules)
        expected_density, expected_colour = point_mlp_reference(
            features, encoded, directions, *modules
        )
    assert density.shape == (37,) and colour.shape == (37, 3)
    torch.testing.assert_close(density, expected_density)
    torch.testing.assert_close(colour, expected_colour)


def _count_reference_calls(monkeypatch) -> list[int]:
    calls = []
    original = point_mlp_module.point_mlp_reference
    monkeypatch.setattr(
        point_mlp_module,
        "point_mlp_reference",
        lambda *args: calls.append(1) or original(*args),
    )
    return calls


def test_with_gradients_the_modules_run_and_gradients_reach_features_and_weights(monkeypatch):
    calls = _count_reference_calls(monkeypatch)
    modules = _mlp(2, True)
    features, encoded, directions = _inputs(20, True)
    density, colour = point_mlp(features, encoded, directions, *modules)
    (density.sum() + colour.sum()).backward()
    assert calls == [1]
    assert features.grad is not None and features.grad.abs().sum() > 0
    assert modules[0][0].weight.grad.abs().sum() > 0


def test_bfloat16_autocast_takes_the_modules_path(monkeypatch):
    calls = _count_reference_calls(monkeypatch)
    modules = _mlp(2, True)
    features, encoded, directions = _inputs(20, True)
    with torch.autocast("cpu", torch.bfloat16):
        _, colour = point_mlp(features, encoded, directions, *modules)
    assert calls == [1]
    assert colour.dtype == torch.bfloat16
    with torch.no_grad():
        point_mlp(features, encoded, directions, *modules)  # float32, no gradients: blocked
    assert calls == [1]
