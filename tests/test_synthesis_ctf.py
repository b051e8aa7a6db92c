"""Coarse-to-fine metamers: stage schedule, the representation matched, and plenoptic's MetamerCTF."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision_jax import data, synthesis


def _pool(x):  # (N, H, W, C) -> (N, H/2, W/2, C) by 2x2 means
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _up(x):
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def energy_pyramid(x):
    """Three scales, coarsest first: the 4x4 low-pass, then squared 8x8 and 16x16 band-passes."""
    l1 = _pool(x)
    l2 = _pool(l1)
    return l2, (l1 - _up(l2)) ** 2, (x - _up(l1)) ** 2


@pytest.fixture(scope="module")
def image():
    return jnp.asarray(data.natural_images(names="camera")[0][::16, ::16][8:24, 8:24, None], jnp.float32)


def test_stages_follow_the_schedule_and_the_metamer_matches(image, key):
    init = jax.random.uniform(key, image.shape)
    res = synthesis.metamer_ctf(energy_pyramid, image, initial=init, max_iter=300, ctf_iters_to_check=20,
                                optimizer=synthesis.adam_amsgrad(0.03), change_scale_criterion=None, stop_criterion=0.0, show_progress=False)
    stages = np.asarray(res.stages[0])
    # together: stage 0 (scale 0), stage 1 (scales 0, 1), then all; each exactly 20 iterations here.
    np.testing.assert_array_equal(stages[:60], np.repeat([0, 1, 2], 20))
    assert np.all(stages[60:] == 2)
    np.testing.assert_array_equal(res.stage_masks, [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    # the recorded loss is over all scales; in the last stage it equals the optimised one
    np.testing.assert_allclose(np.asarray(res.losses[0, 60:]), np.asarray(res.scale_losses[0, 60:]), rtol=1e-6)
    assert float(res.scale_losses[0, 19]) < float(res.scale_losses[0, 0])  # the coarse scale alone improved
    for got, start, want in zip(energy_pyramid(res.metamers[:1]), energy_pyramid(init[None]), energy_pyramid(image[None])):
        assert float(jnp.mean((got - want) ** 2)) < 0.5 * float(jnp.mean((start - want) ** 2))
    assert float(res.losses[0, -1]) < 0.05 * float(res.losses[0, 0])


def test_separate_and_bad_input(image, key):
    assert synthesis.stage_masks(3, "separate").tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]
    with pytest.raises(ValueError, match="coarse_to_fine"):
        synthesis.metamer_ctf(energy_pyramid, image, key=key, coarse_to_fine="both")
    with pytest.raises(ValueError, match="model_fn: expected a tuple"):
        synthesis.metamer_ctf(lambda x: x, image, key=key)
    with pytest.raises(ValueError, match="change_scale_criterion"):
        synthesis.metamer_ctf(energy_pyramid, image, key=key, stop_criterion=1e-2, change_scale_criterion=1e-3)


@pytest.mark.parametrize("mode", ["together", "separate"])
def test_equals_plenoptic_metamer_ctf(x64, image, mode, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    torch = pytest.importorskip("torch")
    po = pytest.importorskip("plenoptic")

    class TorchPyramid(torch.nn.Module):
        scales = [0, 1, 2]

        def forward(self, x, scales=None):
            l1 = torch.nn.functional.avg_pool2d(x, 2)
            l2 = torch.nn.functional.avg_pool2d(l1, 2)
            up = lambda y: y.repeat_interleave(2, -1).repeat_interleave(2, -2)  # noqa: E731
            reps = [l2, (l1 - up(l2)) ** 2, (x - up(l1)) ** 2]
            scales = self.scales if scales is None else scales
            return torch.cat([reps[s].flatten(1) for s in scales], dim=1)

    img = np.asarray(image, np.float64)
    init = np.random.default_rng(0).uniform(size=img.shape)
    crit, n_iter = (2e-4 if mode == "together" else None), 150
    kw = dict(stop_criterion=1e-6, stop_iters_to_check=20, ctf_iters_to_check=15, change_scale_criterion=crit)
    with pytest.warns(UserWarning):  # plenoptic: "validating ... this can take a while", convergence
        met = po.MetamerCTF(torch.from_numpy(img.transpose(2, 0, 1)[None]), TorchPyramid(), coarse_to_fine=mode)
        met.setup(initial_image=torch.from_numpy(init.transpose(2, 0, 1)[None]))
        met.synthesize(max_iter=n_iter, **kw)
    ours = synthesis.metamer_ctf(energy_pyramid, jnp.asarray(img), initial=jnp.asarray(init), coarse_to_fine=mode,
                                 max_iter=n_iter, show_progress=False, **kw)
    po_losses = np.asarray(met.losses)
    n = int(ours.n_iter[0])
    assert len(po_losses) == n + 1  # plenoptic appends the loss of the final image
    np.testing.assert_allclose(np.asarray(ours.losses[0, :n]), po_losses[:n], rtol=1e-6)
    starts = [int(np.argmax(np.asarray(ours.stages[0]) == t)) for t in range(len(ours.stage_masks))]
    assert starts == [met.scales_timing[s][0] for s in list(met.scales_timing)]
    np.testing.assert_allclose(np.asarray(ours.metamers[0]), met.metamer.detach().numpy()[0].transpose(1, 2, 0),
                               rtol=1e-6, atol=1e-9)
