"""Padding is no target: what fills the padded end of a short clip changes neither the loss nor its gradient."""

import torch
from hydra.utils import instantiate

from tests.conftest import TINY, compose_config


def gradients(module, batch) -> dict[str, torch.Tensor]:
    module.zero_grad()
    loss = module._loss(module.net, batch, torch.Generator().manual_seed(0))
    loss.backward()
    return {name: p.grad.clone() for name, p in module.net.named_parameters() if p.grad is not None}


def test_the_gradient_does_not_depend_on_what_fills_the_padding(tmp_path):
    torch.manual_seed(0)
    module = instantiate(compose_config(TINY + [f"paths.root_dir={tmp_path}"]).model)
    spec = module.features.spec
    frames = torch.randint(0, 255, (2, spec.n_video_frames, 3, spec.image_size, spec.image_size), dtype=torch.uint8)
    audio = 0.1 * torch.randn(2, spec.n_samples, generator=torch.Generator().manual_seed(1))
    audio_mask = torch.ones(2, spec.n_samples, dtype=torch.bool)
    audio_mask[0, spec.n_samples // 2:] = False  # the first clip is half as long as the crop
    silent, noisy = audio.clone(), audio.clone()
    silent[~audio_mask] = 0.0
    noisy[~audio_mask] = torch.randn(int((~audio_mask).sum()), generator=torch.Generator().manual_seed(2))

    batch = {"frames": frames, "audio_mask": audio_mask}
    a, b = gradients(module, {**batch, "audio": silent}), gradients(module, {**batch, "audio": noisy})
    assert a.keys() == b.keys() and len(a) > 10
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a), max((a[k] - b[k]).abs().max() for k in a)

    # without the mask the padded content is trained on (the defect this guards against)
    c, d = gradients(module, {"frames": frames, "audio": silent}), gradients(module, {"frames": frames, "audio": noisy})
    assert any(not torch.allclose(c[k], d[k], atol=1e-6) for k in c)
    # and a batch without padding trains exactly as before: the all-True mask is the unmasked loss
    full = {"frames": frames, "audio": silent}
    assert torch.equal(module._loss(module.net, {**full, "audio_mask": torch.ones_like(audio_mask)},
                                    torch.Generator().manual_seed(0)),
                       module._loss(module.net, full, torch.Generator().manual_seed(0)))
