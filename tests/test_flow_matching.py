import pytest
import torch
import torch.nn.functional as F

from v2a.audio import LogMel, mel_frame_mask
from v2a.data.crops import CropWindow
from v2a.diffusion import ODESampler, RectifiedFlow, SamplingStart, guided_velocity, masked_mse
from v2a.shapes import ClipSpec


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


def test_a_source_mean_moves_where_the_flow_starts():
    flow = RectifiedFlow(cond_dropout=0.0)
    x1 = 10.0 + torch.randn(8, 2, 6)
    standing_still = lambda x, t, keep: torch.zeros_like(x)  # noqa: E731
    # from noise the path to x1 is long; from x1's own neighbourhood (a prior that predicted it) it is unit noise long
    from_noise = flow.loss(standing_still, x1, torch.Generator().manual_seed(0)).item()
    from_prior = flow.loss(standing_still, x1, torch.Generator().manual_seed(0), source_mean=x1).item()
    assert from_noise > 50 and 0.5 < from_prior < 1.5
    seen = {}

    def oracle(x, t, keep):  # the exact velocity of the straight path from x0 = x1 + noise
        seen["x"] = x
        return (x1 - x) / (1 - t.view(-1, 1, 1))

    assert flow.loss(oracle, x1, torch.Generator().manual_seed(0), source_mean=x1).item() < 1e-8
    assert (seen["x"] - x1).abs().mean() < 1.0  # x_t stays near the prior all the way
    # a smaller source noise (sampler.prior_noise) shortens the path in proportion: the loss scales with its square
    narrow = flow.loss(standing_still, x1, torch.Generator().manual_seed(0), source_mean=x1, source_std=0.3).item()
    assert narrow == pytest.approx(0.09 * from_prior, rel=1e-4)


def test_start_share_trains_the_drawn_speech_rows_on_the_path_from_where_sampling_starts():
    torch.manual_seed(0)
    x1, estimate = torch.randn(64, 2, 6), torch.randn(64, 2, 6)   # the data, and a prior that misses it
    rows = torch.arange(64) % 2 == 0                                # clips with speech: sampled from the prior
    start = SamplingStart(estimate=estimate, rows=rows, time=0.9)
    seen = {}

    def record(x, t, keep):
        seen.update(x=x, t=t)
        return torch.zeros_like(x)

    plain = RectifiedFlow(cond_dropout=0.0)
    plain_loss = plain.loss(record, x1, torch.Generator().manual_seed(3))
    plain_x, plain_t = seen["x"], seen["t"]
    # share 0, or no start given: the plain objective, bit for bit
    assert RectifiedFlow(cond_dropout=0.0).loss(record, x1, torch.Generator().manual_seed(3), start=start) == plain_loss
    assert RectifiedFlow(cond_dropout=0.0, start_share=1.0).loss(record, x1, torch.Generator().manual_seed(3)) == plain_loss

    flow = RectifiedFlow(cond_dropout=0.0, start_share=1.0)
    flow.loss(record, x1, torch.Generator().manual_seed(3), start=start)
    # rows without speech keep their plain draws; every speech row is moved to t in [0.9, 1]
    assert torch.equal(seen["t"][~rows], plain_t[~rows]) and torch.equal(seen["x"][~rows], plain_x[~rows])
    assert bool((seen["t"][rows] >= 0.9).all()) and bool((seen["t"][rows] <= 1.0).all())
    # ... on the straight line from the sampling start point (0.9 prior + 0.1 noise, the same noise draw) to the data
    noise = torch.randn(x1.shape, generator=torch.Generator().manual_seed(3))
    t = seen["t"][rows].view(-1, 1, 1)
    point = 0.9 * estimate[rows] + 0.1 * noise[rows]
    assert torch.allclose(seen["x"][rows], point + (t - 0.9) / 0.1 * (x1[rows] - point), atol=1e-5)

    # the velocity that lands on the data from there has no error; a network that stands still is charged the
    # error of the data it implies, x_t itself, on the speech rows
    def oracle(x, t, keep):
        return (x1 - x) / (1 - t.view(-1, 1, 1))

    only_speech = SamplingStart(estimate=estimate, rows=torch.ones(64, dtype=torch.bool), time=0.9)
    assert flow.loss(oracle, x1, torch.Generator().manual_seed(3), start=only_speech).item() < 1e-8
    still = flow.loss(record, x1, torch.Generator().manual_seed(3), start=only_speech)
    assert still.item() == pytest.approx(F.mse_loss(seen["x"], x1).item(), rel=1e-5)
    # half the share: about half the speech rows are moved
    half = RectifiedFlow(cond_dropout=0.0, start_share=0.5)
    half.loss(record, x1, torch.Generator().manual_seed(3), start=only_speech)
    assert 16 <= int((seen["t"] != plain_t).sum()) <= 48
    with pytest.raises(ValueError, match="start_share"):
        RectifiedFlow(start_share=1.5)


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
    with pytest.raises(ValueError):
        ODESampler(prior_noise=0.0)


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


class FrameWiseNet(torch.nn.Module):
    """A velocity network that sees each mel frame on its own (1x1 convolution, time embedding, CFG null)."""

    def __init__(self, n_mels: int) -> None:
        super().__init__()
        self.proj = torch.nn.Conv1d(n_mels, n_mels, kernel_size=1)
        self.time = torch.nn.Linear(1, n_mels)
        self.null = torch.nn.Parameter(torch.randn(n_mels, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        h = self.proj(x) + self.time(t[:, None])[..., None]
        return torch.where(keep[:, None, None], h, h + self.null)


def _padded_batch(fill: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Mels [3, 4, 12] whose clips hold 12, 7 and 3 real frames; the rest is filled with zeros or noise."""
    x1 = torch.randn(3, 4, 12, generator=torch.Generator().manual_seed(5))
    mask = torch.arange(12)[None, :] < torch.tensor([12, 7, 3])[:, None]
    filler = torch.zeros_like(x1) if fill == "zeros" else 10 * torch.randn(x1.shape, generator=torch.Generator())
    return torch.where(mask[:, None, :], x1, filler), mask


def _loss_and_grads(x1: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(0)
    net = FrameWiseNet(x1.shape[1])
    loss = RectifiedFlow(cond_dropout=0.3).loss(net, x1, torch.Generator().manual_seed(1), mask=mask)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in net.parameters()]


def test_masked_loss_gradient_does_not_depend_on_the_padding():
    (x_zeros, mask), (x_noise, _) = _padded_batch("zeros"), _padded_batch("noise")
    loss_zeros, grads_zeros = _loss_and_grads(x_zeros, mask)
    loss_noise, grads_noise = _loss_and_grads(x_noise, mask)
    assert torch.equal(loss_zeros, loss_noise)
    assert all(torch.equal(a, b) for a, b in zip(grads_zeros, grads_noise, strict=True))
    # without the mask the padding is trained on: the gradients differ
    _, unmasked_zeros = _loss_and_grads(x_zeros, None)
    _, unmasked_noise = _loss_and_grads(x_noise, None)
    assert not all(torch.equal(a, b) for a, b in zip(unmasked_zeros, unmasked_noise, strict=True))


def test_all_true_mask_gives_todays_loss_exactly():
    x1, _ = _padded_batch("noise")
    everything = torch.ones(3, 12, dtype=torch.bool)
    loss_none, grads_none = _loss_and_grads(x1, None)
    loss_all, grads_all = _loss_and_grads(x1, everything)
    assert torch.equal(loss_none, loss_all)
    assert all(torch.equal(a, b) for a, b in zip(grads_none, grads_all, strict=True))
    # ... which is the plain MSE of the same draws
    flow, g = RectifiedFlow(cond_dropout=0.3), torch.Generator().manual_seed(1)
    x0 = torch.randn(x1.shape, generator=g)
    t = flow.sample_time(3, g, torch.device("cpu"))
    torch.manual_seed(0)
    net = FrameWiseNet(4)
    prediction = net(flow.interpolate(x0, x1, t), t, flow.keep_mask(3, g, torch.device("cpu")))
    assert torch.equal(loss_all, F.mse_loss(prediction, flow.target(x0, x1)).detach())


def test_masked_mse_averages_over_real_frames_only():
    prediction, target = torch.randn(2, 3, 8), torch.randn(2, 3, 8)
    mask = torch.tensor([[True] * 8, [True] * 5 + [False] * 3])
    expected = torch.cat([(prediction - target)[0].flatten(), (prediction - target)[1, :, :5].flatten()]).pow(2).mean()
    assert torch.allclose(masked_mse(prediction, target, mask), expected)
    # a mask on the token grid (2 mel frames a token) is repeated onto the frames
    tokens = torch.tensor([[True] * 4, [True] * 2 + [False] * 2])
    assert torch.equal(masked_mse(prediction, target, tokens), masked_mse(prediction, target, tokens.repeat_interleave(2, 1)))
    # nothing real: no loss and no gradient (not NaN)
    prediction.requires_grad_(True)
    empty = masked_mse(prediction, target, torch.zeros(2, 8, dtype=torch.bool))
    empty.backward()
    assert empty.item() == 0.0 and torch.equal(prediction.grad, torch.zeros_like(prediction))


def test_non_finite_padding_stays_out_of_the_loss_and_gradient():
    prediction = torch.randn(2, 3, 6)
    prediction[1, :, 4:] = float("inf")
    prediction[0, 0, 5] = float("nan")
    prediction.requires_grad_(True)
    mask = torch.tensor([[True] * 5 + [False], [True] * 4 + [False] * 2])
    loss = masked_mse(prediction, torch.zeros(2, 3, 6), mask)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(prediction.grad).all()
    assert not prediction.grad[~mask[:, None, :].expand(-1, 3, -1)].any()


def test_mask_shape_is_checked():
    prediction = torch.randn(2, 3, 8)
    for bad in (torch.ones(3, 8, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool), torch.ones(8, dtype=torch.bool)):
        with pytest.raises(ValueError):
            masked_mse(prediction, prediction, bad)


def test_mel_frame_mask_marks_frames_whose_centre_sample_is_real():
    spec = ClipSpec()  # hop 160, 32000 samples, 200 mel frames
    audio_mask = torch.arange(spec.n_samples)[None, :] < torch.tensor([32000, 19200, 19201, 1, 159, 161])[:, None]
    frames = mel_frame_mask(audio_mask, spec)
    assert frames.dtype == torch.bool and frames.shape == (6, spec.n_mel_frames)
    # frame f is centred on sample f * hop: ceil(real samples / hop) frames of a real prefix are real
    assert frames.sum(dim=1).tolist() == [200, 120, 121, 1, 1, 2]
    assert all(bool(row[: int(n)].all()) and not row[int(n):].any() for row, n in zip(frames, frames.sum(dim=1), strict=True))
    # the grid of LogMel's output, for a LogMel as well as a ClipSpec
    features = LogMel(spec=spec)
    assert features(torch.zeros(2, spec.n_samples)).shape[-1] == frames.shape[-1]
    assert torch.equal(mel_frame_mask(audio_mask, features), frames)
    # the loader's mask of a clip with 1.2 s of content in a 2 s crop: 120 real frames
    window = CropWindow(start_frame=0, start_s=0.0, valid_s=1.2)
    assert int(mel_frame_mask(torch.from_numpy(window.audio_mask(spec)), spec).sum()) == 120
