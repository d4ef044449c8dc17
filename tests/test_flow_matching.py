import pytest
import torch

from v2a.diffusion import ODESampler, RectifiedFlow, guided_velocity


def test_interpolation_endpoints_and_target():
    x0, x1 = torch.randn(4, 3, 5), torch.randn(4, 3, 5)
    flow = RectifiedFlow()
    assert torch.equal(flow.interpolate(x0, x1, torch.zeros(4)), x0)
    assert torch.allclose(flow.interpolate(x0, x1, torch.ones(4)), x1)
    half = flow.interpolate(x0, x1, torch.full((4,), 0.5))
    assert torch.allclose(half, (x0 + x1) / 2)
    assert torch.equal(flow.target(x0, x1), x1 - x0)


def test_loss_is_zero_for_the_true_velocity_and_positive_otherwise():
    flow = RectifiedFlow(cond_dropout=0.0)
    x1 = torch.randn(8, 2, 6)
    g = torch.Generator().manual_seed(0)
    captured = {}

    def oracle(x, t, keep):
        # the exact velocity given x_t and t: (x1 - x_t) / (1 - t)
        captured["keep"] = keep
        return (x1 - x) / (1 - t.view(-1, 1, 1))

    assert flow.loss(oracle, x1, g).item() < 1e-8
    assert captured["keep"].all()
    assert flow.loss(lambda x, t, keep: torch.zeros_like(x), x1, g).item() > 0.5


def test_condition_dropout_rate():
    flow = RectifiedFlow(cond_dropout=0.25)
    keep = flow.keep_mask(20000, torch.Generator().manual_seed(1), torch.device("cpu"))
    assert abs((~keep).float().mean().item() - 0.25) < 0.02


def test_invalid_settings_raise():
    with pytest.raises(ValueError):
        RectifiedFlow(time_sampling="cosine")
    with pytest.raises(ValueError):
        ODESampler(steps=0)
    with pytest.raises(ValueError):
        ODESampler(method="rk45")


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_samplers_follow_a_straight_flow_exactly(method):
    x0, x1 = torch.randn(2, 4), torch.randn(2, 4)
    velocity = lambda x, t: x1 - x0  # noqa: E731 - constant field of a straight path
    out = ODESampler(steps=3, method=method)(velocity, x0)
    assert torch.allclose(out, x1, atol=1e-5)


def test_heun_is_more_accurate_than_euler_on_a_curved_flow():
    # dx/dt = x has the solution x(1) = e * x(0)
    x0 = torch.ones(1)
    exact = torch.e
    euler = ODESampler(steps=4, method="euler")(lambda x, t: x, x0).item()
    heun = ODESampler(steps=4, method="heun")(lambda x, t: x, x0).item()
    assert abs(heun - exact) < abs(euler - exact) / 5


def test_classifier_free_guidance_formula():
    cond = lambda x, t: torch.full_like(x, 2.0)  # noqa: E731
    uncond = lambda x, t: torch.full_like(x, 0.5)  # noqa: E731
    x, t = torch.zeros(3), torch.zeros(1)
    assert torch.allclose(guided_velocity(cond, uncond, 3.0)(x, t), torch.full((3,), 0.5 + 3 * 1.5))
    assert guided_velocity(cond, uncond, 1.0) is cond
