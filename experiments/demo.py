"""Tour of the building blocks: spectra of the embedded images, DoG responses, whitened patches.

python experiments/demo.py --out out/demo      (or: vision-jax demo)
"""
from vision_jax import runner

DESCRIPTION = "building blocks on embedded data: image spectra, DoG responses, whitened patches (seconds)"


def add_arguments(parser):
    parser.add_argument("--n-patches", type=int, default=None, help="patches to extract (default 2048, --full 65520)")


def _spectral_slope(image):
    import numpy as np

    from vision_jax.data import radial_frequency

    f = radial_frequency(image.shape)
    power = np.abs(np.fft.fft2(image - image.mean())) ** 2
    band = (f > 0.02) & (f < 0.25)
    return float(np.polyfit(np.log(f[band]), np.log(power[band]), 1)[0])


def run(args):
    import jax
    import numpy as np

    from vision_jax import data, filters, plot

    key = jax.random.key(args.seed)
    images = data.natural_images()
    names = data.list_natural_images()
    crops = [im[:256, :256] for im in images]
    runner.save_figure(plot.imshow(crops, titles=list(names), col_wrap=4, zoom=0.8), args.out, "images")

    k_pink, k_leaves, k_patch = jax.random.split(key, 3)
    synthetic = {"1/f noise": np.asarray(data.pink_noise(k_pink, (256, 256))),
                 "dead leaves": np.asarray(data.dead_leaves(k_leaves, (256, 256), n_disks=3000))}
    slopes = {name: _spectral_slope(im) for name, im in zip(names, crops)}
    slopes.update({name: _spectral_slope(im) for name, im in synthetic.items()})

    dog = filters.dog_kernel(1.0, 3.0, surround_weight=0.9)
    responses = [np.asarray(filters.convolve2d(im, dog, padding="reflect")) for im in crops[:2] + list(synthetic.values())]
    titles = [f"DoG * {n}" for n in list(names[:2]) + list(synthetic)]
    runner.save_figure(plot.imshow(responses, titles=titles, vrange="indep"), args.out, "dog_responses")

    n_patches = args.n_patches or (65520 if args.full else 2048)
    patches = data.extract_patches(images, key=k_patch, n_patches=n_patches)
    runner.save_figure(plot.tiles(patches[:100], title="whitened 21x21 patches"), args.out, "patches")
    rms = np.sqrt((patches**2).mean(axis=1))
    runner.save_figure(plot.histograms({"patch RMS": rms}, xlabel="RMS"), args.out, "patch_rms")
    return {
        "power_spectrum_slope": slopes,
        "n_patches": int(patches.shape[0]),
        "patch_rms_mean": float(rms.mean()),
        "patch_rms_sd": float(rms.std()),
    }


if __name__ == "__main__":
    raise SystemExit(runner.main_for(__name__))
