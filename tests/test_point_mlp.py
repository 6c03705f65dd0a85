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


def _values_and_gradients(function, inputs, modules):
    features, encoded, directions = inputs
    density, colour = function(features, encoded, directions, *modules)
    # weights of every output, so a wrong gradient anywhere changes the loss's gradient
    generator = torch.Generator().manual_seed(1)
    loss = (density * torch.randn(density.shape, generator=generator)).sum() + (
        colour * torch.randn(colour.shape, generator=generator)
    ).sum()
    trunk, *heads = modules
    parameters = [p for m in (*trunk, *heads) for p in m.parameters()]
    return (density, colour), torch.autograd.grad(loss, [features, *parameters])


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("view_dependent", [True, False])
@pytest.mark.parametrize("onednn", [True, False])
def test_blocked_mlp_equals_the_modules_with_the_same_gradients(
    monkeypatch, depth, view_dependent, onednn
):
    # blocks of 16 rows: 37 rows make two full blocks and a partial one
    monkeypatch.setattr(point_mlp_module, "BLOCK_ROWS", 16)
    monkeypatch.setattr(
        point_mlp_module, "_ONEDNN_LINEAR", onednn and point_mlp_module._ONEDNN_LINEAR
    )
    modules = _mlp(depth, view_dependent)
    inputs = _inputs(37, view_dependent)
    (density, colour), gradients = _values_and_gradients(point_mlp, inputs, modules)
    (expected_density, expected_colour), expected = _values_and_gradients(
        point_mlp_reference, inputs, modules
    )
    assert density.shape == (37,) and colour.shape == (37, 3)
    torch.testing.assert_close(density, expected_density)
    torch.testing.assert_close(colour, expected_colour)
    assert len(gradients) == len(expected)
    for got, want in zip(gradients, expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_blocked_mlp_without_gradients_equals_the_modules(monkeypatch):
    monkeypatch.setattr(point_mlp_module, "BLOCK_ROWS", 16)
    modules = _mlp(2, True)
    features, encoded, directions = _inputs(50, True)
    with torch.no_grad():
        density, colour = point_mlp(features, encoded, directions, *modules)
        expected = point_mlp_reference(features, encoded, directions, *modules)
    torch.testing.assert_close(density, expected[0])
    torch.testing.assert_close(colour, expected[1])


def test_blocked_mlp_trains_the_features_only_when_they_need_it():
    modules = _mlp(2, True)
    features, encoded, directions = _inputs(20, True)
    features = features.detach()
    density, colour = point_mlp(features, encoded, directions, *modules)
    (density.sum() + colour.sum()).backward()
    assert features.grad is None
    assert modules[0][0].weight.grad is not None and modules[0][0].weight.grad.abs().sum() > 0


def test_bfloat16_autocast_takes_the_modules_path(monkeypatch):
    calls = []
    original = point_mlp_module.point_mlp_reference
    monkeypatch.setattr(
        point_mlp_module,
        "point_mlp_reference",
        lambda *args: calls.append(1) or original(*args),
    )
    modules = _mlp(2, True)
    features, encoded, directions = _inputs(20, True)
    with torch.autocast("cpu", torch.bfloat16):
        _, colour = point_mlp(features, encoded, directions, *modules)
    assert calls == [1]
    assert colour.dtype == torch.bfloat16
    point_mlp(features, encoded, directions, *modules)  # float32: the blocked path
    assert calls == [1]
