"""concat_linear: the layer of the concatenation, without the concatenation."""

import pytest
import torch

from nerfvae.models.concat_linear import concat_linear


@pytest.mark.parametrize("bias", [True, False])
def test_concat_linear_equals_the_layer_on_the_concatenation_with_the_same_gradients(bias):
    torch.manual_seed(0)
    layer = torch.nn.Linear(7 + 3 + 5, 6, bias=bias)
    parts = [torch.randn(2, 4, width, requires_grad=True) for width in (7, 3, 5)]
    parts[1].requires_grad_(False)  # a part without a gradient, like an encoded direction
    expected = layer(torch.cat(parts, dim=-1))
    got = concat_linear(layer, parts)
    assert got.shape == (2, 4, 6)
    torch.testing.assert_close(got, expected)
    weights = torch.randn(expected.shape)
    inputs = [parts[0], parts[2], *layer.parameters()]
    for a, b in zip(
        torch.autograd.grad((got * weights).sum(), inputs),
        torch.autograd.grad((expected * weights).sum(), inputs),
    ):
        torch.testing.assert_close(a, b)


def test_concat_linear_refuses_parts_that_do_not_fill_the_layer():
    layer = torch.nn.Linear(10, 2)
    with pytest.raises(ValueError, match="9 features"):
        concat_linear(layer, [torch.randn(3, 4), torch.randn(3, 5)])


def test_concat_linear_refuses_parts_wider_than_the_layer_before_multiplying():
    layer = torch.nn.Linear(10, 2)
    with pytest.raises(ValueError, match="12 features"):
        concat_linear(layer, [torch.randn(3, 4), torch.randn(3, 8)])


def test_concat_linear_under_bfloat16_autocast_matches_the_layer():
    """Training with ``--precision bf16`` runs the layer under autocast, where in-place products
    are not cast: the result and its gradients must still be the autocast layer's."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(16 + 15, 8)
    parts = [torch.randn(64, 16, requires_grad=True), torch.randn(64, 15)]
    with torch.autocast("cpu", torch.bfloat16):
        expected = layer(torch.cat(parts, dim=-1))
        got = concat_linear(layer, parts)
    assert got.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected.float(), atol=0.05, rtol=0.02)
    grads = torch.autograd.grad(got.float().sum(), [parts[0], layer.weight])
    grads_expected = torch.autograd.grad(expected.float().sum(), [parts[0], layer.weight])
    for a, b in zip(grads, grads_expected):
        torch.testing.assert_close(a, b, atol=0.1, rtol=0.02)
