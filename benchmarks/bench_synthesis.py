"""Synthesis speed and accuracy: vision_jax vs plenoptic, side by side in one process.

python benchmarks/bench_synthesis.py [--iters 200] [--rounds 2] [--eigen-size 64] [--skip-metamers]
Metamers: plenoptic's einstein (256x256), pretrained CenterSurround / LuminanceGainControl with
31x31 kernels and reflect padding, Adam(0.01, amsgrad), a fixed number of iterations from the same
initial image; plenoptic and vision_jax alternate for ``--rounds`` rounds in this process (best
run of each; vision_jax compiled beforehand, three runs per round). torch runs one thread and
XLA's Eigen operations one thread (``--threads 2``: two each); XLA may still split large fused
loops over the cores, so for a strict one-core comparison run the script under ``taskset -c 0``.
Eigendistortions (top + bottom) on einstein downsampled to ``--eigen-size``: plenoptic's power
method vs vision_jax's Lanczos (at most 800 steps; its first call, which compiles, then
plenoptic, then warm calls). Up to 64x64 both run in float64 and are checked against the exact
eigenvalues; larger images (``--eigen-size 256``, the full image, about 15 minutes for plenoptic)
run in float32 and are certified in float64 from the vectors (see :func:`residual_certificate`).
Needs the reference extra: pip install torch==2.13.0 && pip install -e ".[reference]".
"""
import argparse
import os
import sys
import time
import warnings

from _timing import pin_threads, print_table

# The same number of threads on both sides (--threads, default 1: a fair comparison, and steadier
# on a shared machine, where a two-thread XLA op waits for both threads). Read before JAX starts.
THREADS = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 1
pin_threads(THREADS)
os.environ.setdefault("TQDM_DISABLE", "1")  # plenoptic's progress bars
if THREADS == 1:
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import plenoptic as po  # noqa: E402
import torch  # noqa: E402

from vision_jax import models, synthesis  # noqa: E402

torch.set_num_threads(THREADS)


def po_model(name):
    cls = {"CenterSurround": po.models.CenterSurround, "LuminanceGainControl": po.models.LuminanceGainControl}[name]
    m = cls(31, cache_filt=True) if name == "CenterSurround" else cls(31, pretrained=True, cache_filt=True)
    m.eval()
    po.remove_grad(m)
    return m


def our_model(name):
    return models.center_surround(31) if name == "CenterSurround" else models.luminance_gain_control(31, pretrained=True)


def metamer_rows(iters, rounds):
    img = po.data.einstein().to(torch.float32)
    rows = []
    for name in ("CenterSurround", "LuminanceGainControl"):
        torch.manual_seed(0)
        init = torch.rand_like(img)
        ours = our_model(name)
        params = ours.init()
        fn = jax.jit(lambda x, ours=ours, params=params: ours.apply(params, x))
        target = jnp.asarray(img.numpy().transpose(0, 2, 3, 1))
        x0 = jnp.asarray(init.numpy().transpose(0, 2, 3, 1))
        kwargs = dict(initial=x0, max_iter=iters, stop_criterion=0.0, chunk_size=iters, show_progress=False)
        synthesis.metamer(fn, target, **kwargs)  # compile
        t_po = t_ours = float("inf")
        for _ in range(rounds):  # round robin: both see the same machine load
            met = po.Metamer(img, po_model(name))
            met.setup(initial_image=init.clone())
            start = time.perf_counter()
            met.synthesize(max_iter=iters, stop_criterion=0)
            t_po = min(t_po, time.perf_counter() - start)
            for _ in range(3):  # vision_jax's run is ~20x shorter: three per round against load bursts
                start = time.perf_counter()
                res = synthesis.metamer(fn, target, **kwargs)
                jax.block_until_ready(res.metamers)
                t_ours = min(t_ours, time.perf_counter() - start)
        rows.append([name, iters / t_po, iters / t_ours, f"{t_po / t_ours:.0f}x", float(met.losses[-1]), float(res.losses[0, -1])])
    return rows


# Up to this side the exact spectrum (a dense Jacobian) is computed and the run is in float64; above
# it both sides run in float32 (plenoptic's default) and correctness is certified by residuals.
EXACT_MAX_SIZE = 64


def eigen_rows(size):
    exact_mode = size <= EXACT_MAX_SIZE
    jax.config.update("jax_enable_x64", True)  # float64 for the exact values and the certificates
    dtype, tdtype, tol = (jnp.float64, torch.float64, 1e-6) if exact_mode else (jnp.float32, torch.float32, 1e-5)
    img = po.data.einstein().to(torch.float64)
    if size < 256:
        img = po.process.blur_downsample(img, n_scales=int(np.log2(256 // size)))
    img = img.to(tdtype)
    rows = []
    for name in ("CenterSurround", "LuminanceGainControl"):
        ours = our_model(name)
        params = jax.tree.map(lambda x: jnp.asarray(x, dtype), ours.init())
        fn = lambda x, ours=ours, params=params: ours.apply(params, x)  # noqa: E731
        x = jnp.asarray(img.numpy()[0].transpose(1, 2, 0))
        if exact_mode:
            ex = np.asarray(synthesis.eigendistortion(fn, x, method="exact").eigenvalues)

        def ours_once():
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                lz = synthesis.eigendistortion(fn, x, method="lanczos", max_iter=min(800, size * size), tol=tol)
            jax.block_until_ready(lz.eigenvalues)
            return lz, time.perf_counter() - start

        _, first = ours_once()  # compiles; the later calls reuse the cached program
        m = po_model(name).to(tdtype)
        ed = po.Eigendistortion(img, m)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ed.synthesize(method="power", max_iter=1000)
        t_po = time.perf_counter() - start
        po_lam = ed.eigenvalues.detach().numpy().astype(np.float64)
        runs = [ours_once() for _ in range(2)]
        lz, times = runs[-1][0], [first] + [t for _, t in runs]
        ours_lam = np.asarray(lz.eigenvalues, np.float64)
        if exact_mode:
            def check(lam, _vecs):  # both ends within 1e-6 of lambda_max of the exact values
                return "yes" if max(abs(lam[0] - ex[0]), abs(lam[-1] - ex[1])) <= 1e-6 * ex[0] else "no"
            reference = f"{ex[0]:.6g} / {ex[1]:.3g}"
        else:
            certify = residual_certificate(ours, x)

            def check(lam, vecs):
                return certify(lam, vecs)
            reference = "residuals"
        po_vecs = ed.eigendistortions.detach().numpy().transpose(0, 2, 3, 1)
        rows.append([name, f"{size}x{size} {np.dtype(dtype).name}", lz.n_iter[0], t_po, times[0], min(times[1:]),
                     f"{t_po / times[0]:.0f}x", f"{t_po / min(times[1:]):.0f}x", reference,
                     f"{po_lam[0]:.6g} / {po_lam[-1]:.3g} ({check(po_lam[[0, -1]], po_vecs[[0, -1]])})",
                     f"{ours_lam[0]:.6g} / {ours_lam[1]:.3g} ({check(ours_lam, np.asarray(lz.eigendistortions))})"])
    return rows


def residual_certificate(ours, x):
    """``check(lams, vecs)`` for the (top, bottom) pairs, computed in float64 from the vectors:
    their Rayleigh quotients ``rq = v.F v`` and relative residuals ``||F v - rq v|| / rq_top``.

    "yes" when the top residual is <= 1e-4 (the top value is within 1e-4 lambda_max of an
    eigenvalue) and the bottom quotient is <= 1e-4 lambda_max: F = J^T J is positive
    semi-definite, so ``0 <= lambda_min <= rq_bottom`` bounds the error of the bottom value.
    """
    params = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), ours.init())
    fv = jax.jit(synthesis.fisher_product(lambda z: ours.apply(params, z), jnp.asarray(x, jnp.float64)))

    def check(_lams, vecs):
        rq, res = [], []
        for v in vecs:
            v = jnp.asarray(v, jnp.float64).ravel()
            v = v / jnp.linalg.norm(v)
            fvv = fv(v)
            rq.append(float(v @ fvv))
            res.append(float(jnp.linalg.norm(fvv - rq[-1] * v)))
        top_res, bottom = res[0] / rq[0], rq[1] / rq[0]
        ok = top_res <= 1e-4 and bottom <= 1e-4
        return f"{'yes' if ok else 'no'}; top residual {top_res:.1e}, bottom v.Fv {bottom:.1e} lambda_max"

    return check


def print_metamers(args):
    print(f"metamers, einstein 256x256, 31x31 kernels, reflect padding, {args.iters} iterations (float32, CPU, "
          f"{args.threads} thread(s) each; best of {args.rounds} alternating rounds)")
    print_table(["model", "plenoptic it/s", "vision_jax it/s", "speed-up", "plenoptic final loss", "vision_jax final loss"],
                metamer_rows(args.iters, args.rounds))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="alternating timing rounds of the metamers")
    parser.add_argument("--eigen-size", type=int, default=64)
    parser.add_argument("--skip-metamers", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="threads of each side (torch and XLA; all cores for XLA when > 1)")
    args = parser.parse_args()
    if not args.skip_metamers:
        print_metamers(args)
        print()
    if args.eigen_size <= 0:
        return
    if args.eigen_size <= EXACT_MAX_SIZE:
        setting, correct = "float64, Lanczos tolerance 1e-6", "both ends within 1e-6 lambda_max of exact"
    else:
        setting, correct = ("float32, Lanczos tolerance 1e-5", "in float64, top residual ||Fv - (v.Fv) v|| <= 1e-4 lambda_max and "
                            "bottom v.Fv <= 1e-4 lambda_max (F is PSD: 0 <= lambda_min <= v.Fv)")
    print(f"eigendistortions top + bottom ({setting}): plenoptic power (max_iter 1000) vs vision_jax Lanczos; lambda_max / lambda_min")
    print(f"(vision_jax: at most 800 steps; first call with compilation, then plenoptic, then warm; correct: {correct})")
    print_table(["model", "image", "Lanczos steps", "plenoptic s", "vision_jax first s", "vision_jax warm s", "speed-up first", "speed-up warm",
                 "exact", "plenoptic (correct)", "vision_jax (correct)"], eigen_rows(args.eigen_size))


if __name__ == "__main__":
    main()
