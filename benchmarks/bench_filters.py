"""Same-size 2-D convolution: vision_jax direct and FFT vs scipy.ndimage, 256x256 images.

python benchmarks/bench_filters.py [--batch 8]
Prints a Markdown table of times relative to scipy.ndimage.convolve (float32, one thread).
"""
import argparse

from _timing import best_time, pin_threads, print_table

pin_threads(1)

import jax  # noqa: E402
import numpy as np  # noqa: E402
import scipy.ndimage as ndi  # noqa: E402

from vision_jax import filters  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, args.size, args.size)).astype(np.float32)
    xj = jax.device_put(x)
    rows = []
    for k in (3, 5, 9, 13, 17, 31):
        kernel = filters.gaussian_kernel(k / 6, k)
        kn = np.asarray(kernel)
        t_scipy = best_time(lambda: [ndi.convolve(im, kn, mode="mirror") for im in x], repeat=3)
        t_direct = best_time(lambda: filters.convolve2d(xj, kernel, method="direct").block_until_ready())
        t_fft = best_time(lambda: filters.convolve2d(xj, kernel, method="fft").block_until_ready())
        auto = filters._pick_method("auto", (k, k))
        rows.append([f"{k}x{k}", t_scipy * 1e3, t_scipy / t_direct, t_scipy / t_fft, auto])
    print(f"convolution of {args.batch} images {args.size}x{args.size}, reflect padding, {jax.devices()[0].platform}")
    print_table(["kernel", "scipy ms", "direct speed-up", "FFT speed-up", "auto picks"], rows)
    sig = [1.0, 2.0, 4.0]
    rows = []
    for s in sig:
        t_scipy = best_time(lambda: [ndi.gaussian_filter(im, s, mode="mirror") for im in x], repeat=3)
        t_ours = best_time(lambda: filters.gaussian_blur(xj, s).block_until_ready())
        rows.append([s, t_scipy * 1e3, t_scipy / t_ours])
    print()
    print_table(["blur sigma", "scipy ms", "gaussian_blur speed-up"], rows)


if __name__ == "__main__":
    main()
