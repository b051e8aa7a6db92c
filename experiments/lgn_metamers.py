"""Metamers and eigendistortions of LGN-like models (the plenoptic introduction, on embedded images).

For a Gaussian blur, a center-surround filter and a luminance gain control model (31x31 kernels,
Berardino et al.'s fitted values): metamers of a photograph from three starting points (white
noise, pink noise, another photograph) in one batched call, the most and least noticeable
distortions (eigendistortions) at two images, and a test of location dependence: the model's
response to its top eigendistortion, and to the same distortion shifted by a quarter image.

    vision-jax lgn-metamers              # quick: 128x128 images, 300 iterations
    vision-jax lgn-metamers --full       # 256x256, 1000 iterations
"""
from vision_jax import runner

DESCRIPTION = "metamers and eigendistortions of Gaussian, center-surround and gain-control models"


def add_arguments(parser):
    parser.add_argument("--iters", type=int, default=None, help="metamer iterations (quick 300, full 1000)")
    parser.add_argument("--eigen-size", type=int, default=None, help="image side for eigendistortions (quick 48, full 64)")
    parser.add_argument("--eigen-steps", type=int, default=300, help="Lanczos steps")


def _models():
    from vision_jax import models

    return {
        "Gaussian": models.gaussian(31, std=3.0),
        "CenterSurround": models.center_surround(31),
        "LuminanceGainControl": models.luminance_gain_control(31, pretrained=True),
    }


def run(args):
    import warnings

    import jax
    import jax.numpy as jnp
    import numpy as np

    from vision_jax import data, plot, synthesis

    size = 256 if args.full else 128
    iters = args.iters or (1000 if args.full else 300)
    eig_size = args.eigen_size or (64 if args.full else 48)
    key = jax.random.key(args.seed)
    camera, astronaut = data.natural_images(names=("camera", "astronaut"))
    step = 512 // size
    target = jnp.asarray(camera[::step, ::step][:size, :size, None])
    other = jnp.asarray(astronaut[::step, ::step][:size, :size, None])
    k_white, k_pink = jax.random.split(key)
    pink = data.pink_noise(k_pink, (size, size))
    pink = (pink - pink.min()) / (pink.max() - pink.min())
    starts = jnp.stack([jax.random.uniform(k_white, target.shape), pink[:, :, None], other])
    start_names = ["white noise", "pink noise", "astronaut"]

    metrics = {"image_size": size, "iterations": iters, "metamers": {}, "eigendistortions": {}, "shift_test": {}}
    losses = {}
    for name, model in _models().items():
        params = model.init()
        fn = jax.jit(lambda x, model=model, params=params: model.apply(params, x))
        res = synthesis.metamer(fn, target, initial=starts, max_iter=iters, stop_criterion=0.0)
        final = np.asarray(res.losses)[:, -1]
        metrics["metamers"][name] = {s: float(v) for s, v in zip(start_names, final)}
        for s, curve in zip(start_names, np.asarray(res.losses)):
            losses[f"{name}, {s}"] = curve
        images = [target[..., 0]] + [m[..., 0] for m in res.metamers]
        runner.save_figure(plot.imshow(images, titles=["target"] + [f"from {s}" for s in start_names], vrange=(0, 1)),
                           args.out, f"metamers_{name}")
        reps = [fn(target[None])[0, ..., 0]] + [fn(m[None])[0, ..., 0] for m in res.metamers]
        runner.save_figure(plot.imshow(reps, titles=["representation of target"] + [f"of metamer from {s}" for s in start_names]),
                           args.out, f"representations_{name}")
    runner.save_figure(plot.curves(losses, xlabel="iteration", ylabel="loss", logy=True, title="metamer synthesis"), args.out, "metamer_losses")

    # Eigendistortions at two images, and the shift test.
    e_step = 512 // eig_size
    eig_images = {"camera": jnp.asarray(camera[::e_step, ::e_step][:eig_size, :eig_size, None]),
                  "astronaut": jnp.asarray(astronaut[::e_step, ::e_step][:eig_size, :eig_size, None])}
    panels, titles = [], []
    for name, model in _models().items():
        params = model.init()
        fn = jax.jit(lambda x, model=model, params=params: model.apply(params, x))
        metrics["eigendistortions"][name] = {}
        for img_name, img in eig_images.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ed = synthesis.eigendistortion(fn, img, method="lanczos", max_iter=args.eigen_steps, key=key)
            lam = np.asarray(ed.eigenvalues)
            metrics["eigendistortions"][name][img_name] = {"lambda_max": float(lam[0]), "lambda_min": float(lam[1]),
                                                           "converged": list(ed.converged)}
            panels += [img[..., 0], ed.eigendistortions[0, ..., 0], ed.eigendistortions[1, ..., 0]]
            titles += [f"{name[:14]}: {img_name}", f"max (λ={lam[0]:.3g})", f"min (λ={lam[1]:.2g})"]
            if img_name == "camera" and name in ("Gaussian", "LuminanceGainControl"):
                e = ed.eigendistortions[0]
                shifted = jnp.roll(e, (eig_size // 4, eig_size // 4), axis=(0, 1))
                base = fn(img[None])
                norm = lambda d: float(jnp.linalg.norm(fn((img + 0.1 * d)[None]) - base))  # noqa: E731
                metrics["shift_test"][name] = {"original": norm(e), "shifted": norm(shifted)}
    runner.save_figure(plot.imshow(panels, titles=titles, vrange="indep", col_wrap=6, zoom=0.9), args.out, "eigendistortions")
    for name, norms in metrics["shift_test"].items():
        print(f"{name:22s} response to top eigendistortion {norms['original']:.4f}, shifted by a quarter image {norms['shifted']:.4f}")
    return metrics


if __name__ == "__main__":
    raise SystemExit(runner.main_for(__name__))
