"""Sparse Hebbian learning with homeostasis: None, OLS, HEH, HAP and EMP compared (Perrinet 2019).

Every method learns a dictionary of whitened natural-image patches for several seeds, all in one
vmapped computation; the figures follow the paper: learned dictionaries, activation
probabilities, the cumulative histograms P_cum (Fig. 2A) and the cost F over learning with a
band over seeds (Fig. 1B / 3B).

    vision-jax homeostasis                      # quick: about two minutes on a 2-core CPU
    vision-jax homeostasis --full               # the paper's sizes (676 atoms, 4096 iterations)
    vision-jax homeostasis --sweep              # final F over eta_homeo x method x seed (Fig. 2B)
"""
import itertools
import shutil

from vision_jax import runner

DESCRIPTION = "sparse coding with homeostasis: None/OLS/HEH/HAP/EMP compared on natural images (main job)"

SWEEP_QUICK = dict(n_atoms=144, n_iter=192, batch_size=256, n_patches=8192, n_seeds=2, record_every=32)
SWEEP_FULL = dict(n_atoms=676, n_iter=2048, batch_size=1024, n_patches=65520, n_seeds=3, record_every=64)
QUICK = dict(n_atoms=324, n_iter=384, batch_size=512, n_patches=16384, n_seeds=3, record_every=32)
FULL = dict(n_atoms=676, n_iter=4096, batch_size=4096, n_patches=65520, n_seeds=4, record_every=32)


def add_arguments(parser):
    parser.add_argument("--methods", nargs="+", default=["None", "OLS", "HEH", "HAP", "EMP"], help="homeostasis rules to compare")
    parser.add_argument("--n-seeds", type=int, default=None, help="runs per method (quick 3, full 4)")
    parser.add_argument("--n-iter", type=int, default=None, help="learning iterations (quick 384, full 4096)")
    parser.add_argument("--n-steps", type=int, default=21, help="matching pursuit steps N0")
    parser.add_argument("--eta", type=float, default=0.02, help="dictionary learning rate (Adam)")
    parser.add_argument("--eta-homeo", type=float, default=0.01, help="homeostasis rate")
    parser.add_argument("--fresh", action="store_true", help="discard checkpoints of an earlier run in --out")
    parser.add_argument("--sweep", action="store_true",
                        help="instead of one run per method, scan eta_homeo (the paper's Fig. 2B): final F per method x eta_homeo x seed")
    parser.add_argument("--sweep-values", type=float, nargs="+", default=None,
                        help="eta_homeo values of --sweep (default 5 log-spaced values from 0.001 to 0.1)")
    parser.add_argument("--sweep-batch", type=int, default=4,
                        help="runs computed together in --sweep (vmapped; the rest in sequence inside the same compiled call)")


def _p_cum_figure(p_cum, methods):
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(methods), figsize=(3 * len(methods), 3), sharey=True, squeeze=False)
    grid = np.linspace(0, 1, p_cum.shape[-1])
    for ax, method, curves in zip(axes[0], methods, p_cum):
        ax.plot(grid, curves.T, color="k", alpha=0.05, linewidth=0.7)
        ax.set_title(method)
        ax.set_xlabel("normalised coefficient")
        ax.set_ylim(0.9, 1.0)
    axes[0, 0].set_ylabel("P_cum")
    fig.tight_layout()
    return fig


def _run_sweep(args, settings, patches, k_learn):
    """Final F of every method x eta_homeo x seed, all in one compiled call of vision_jax.sweep."""
    import jax
    import jax.numpy as jnp
    import matplotlib.pyplot as plt
    import numpy as np
    from jax import lax

    from vision_jax import sparse
    from vision_jax.sweep import sweep

    values = args.sweep_values or list(np.geomspace(0.001, 0.1, 5))
    n_chunks = -(-settings["n_iter"] // settings["record_every"])
    record_patches = patches[np.linspace(0, patches.shape[0] - 1, 1024).astype(int)]
    dtype = patches.dtype

    # 1/f-noise initial dictionaries (numpy) are drawn here, one per seed; the seed ("init") is a grid axis.
    seed_keys = jax.random.split(k_learn, settings["n_seeds"])
    inits = jnp.stack([sparse.init_dictionary(k, np.asarray(patches), settings["n_atoms"]) for k in seed_keys])

    def final_cost(key, hyper):
        seed = hyper["init"].astype(jnp.int32)
        config = sparse.learn_config(hyper["method"], eta=args.eta, eta_homeo=hyper["eta_homeo"], dtype=dtype)
        state = sparse.init_learning(jax.random.fold_in(key, seed), inits[seed], config)

        def chunk(s, _):
            return sparse.learn_chunk(s, config, patches, record_patches, n_iter=settings["record_every"], n_steps=args.n_steps,
                                      batch_size=settings["batch_size"])

        _, records = lax.scan(chunk, state, None, length=n_chunks)
        return {"F": records.F[-1], "F_curve": records.F}

    grid = {"method": [float(sparse.method_index(m)) for m in args.methods], "eta_homeo": [float(v) for v in values],
            "init": [float(i) for i in range(settings["n_seeds"])]}
    n_runs = len(args.methods) * len(values) * settings["n_seeds"]
    print(f"sweep: {len(args.methods)} methods x {len(values)} eta_homeo x {settings['n_seeds']} seeds = {n_runs} runs "
          f"of {n_chunks * settings['record_every']} iterations, one compiled call")
    res = sweep(final_cost, grid, key=k_learn, batch_size=args.sweep_batch, devices=runner.sweep_devices(args))
    F = res.reshape()["F"].reshape(len(args.methods), len(values), settings["n_seeds"])
    with open(runner.prepare_out(args.out) / "sweep.csv", "w") as csv:
        csv.write("method,eta_homeo,seed,final_F\n")
        for (m, method), (j, v), s in itertools.product(enumerate(args.methods), enumerate(values), range(settings["n_seeds"])):
            csv.write(f"{method},{v:.6g},{s},{F[m, j, s]:.6f}\n")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m, method in enumerate(args.methods):
        mean, sd = F[m].mean(-1), F[m].std(-1)
        ax.semilogx(values, mean, "o-", label=method)
        ax.fill_between(values, mean - sd, mean + sd, alpha=0.2)
    ax.set_xlabel("eta_homeo")
    ax.set_ylabel(f"final F ({n_chunks * settings['record_every']} iterations)")
    ax.legend(fontsize=8)
    ax.set_title("homeostasis rate scan (mean ± sd over seeds)", fontsize=9)
    runner.save_figure(fig, args.out, "sweep_eta_homeo")
    best = {method: float(values[int(np.argmin(F[m].mean(-1)))]) for m, method in enumerate(args.methods)}
    for m, method in enumerate(args.methods):
        print(f"  {method:5s} " + "  ".join(f"{v:.3g}: {F[m, j].mean():.4f}" for j, v in enumerate(values)))
    return {"settings": {**settings, "n_steps": args.n_steps, "eta": args.eta, "seed": args.seed, "sweep_batch": args.sweep_batch},
            "eta_homeo": values,
            "final_F": {method: {"mean": F[m].mean(-1), "sd": F[m].std(-1)} for m, method in enumerate(args.methods)},
            "best_eta_homeo": best}


def run(args):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from vision_jax import data, plot, sparse

    if args.sweep:
        settings = dict(SWEEP_FULL if args.full else SWEEP_QUICK)
    else:
        settings = dict(FULL if args.full else QUICK)
    if args.n_seeds is not None:
        settings["n_seeds"] = args.n_seeds
    if args.n_iter is not None:
        settings["n_iter"] = args.n_iter
    key = jax.random.key(args.seed)
    k_data, k_learn = jax.random.split(key)
    patches = jnp.asarray(data.extract_patches(data.natural_images(), key=k_data, n_patches=settings["n_patches"]))
    if args.sweep:
        return _run_sweep(args, settings, patches, k_learn)
    print(f"{patches.shape[0]} patches of {patches.shape[1]} pixels; {len(args.methods)} methods x {settings['n_seeds']} seeds, "
          f"{settings['n_iter']} iterations of {settings['batch_size']} patches, {settings['n_atoms']} atoms")

    checkpoints = args.out / "checkpoints"
    if args.fresh and checkpoints.exists():
        shutil.rmtree(checkpoints)
    result = sparse.learn_dictionaries(
        jax.random.split(k_learn, settings["n_seeds"]), patches, tuple(args.methods),
        n_atoms=settings["n_atoms"], n_steps=args.n_steps, n_iter=settings["n_iter"], batch_size=settings["batch_size"],
        eta=args.eta, eta_homeo=args.eta_homeo, record_every=settings["record_every"], checkpoint_dir=checkpoints,
    )
    F = np.asarray(result.history.F)  # (methods, seeds, records)
    iters = np.asarray(result.history.iteration)[0, 0]
    p_final = np.asarray(result.homeostasis.p)  # (methods, seeds, N)
    entropy = np.asarray(result.history.entropy)[..., -1]

    for m, method in enumerate(args.methods):
        runner.save_figure(plot.tiles(np.asarray(result.dictionary[m, 0]), title=f"{method} (seed 0)"), args.out, f"dictionary_{method}")
    runner.save_figure(plot.curves({m: F[i] for i, m in enumerate(args.methods)}, x=iters, ylabel="F = residual + 0.0005 * P_cum spread",
                                   title="cost during learning (mean ± sd over seeds)"), args.out, "cost_F")
    runner.save_figure(plot.histograms({m: p_final[i] for i, m in enumerate(args.methods)}, bins=40, xlabel="activation probability p_i"),
                       args.out, "activation_probability")
    runner.save_figure(_p_cum_figure(np.asarray(result.homeostasis.p_cum[:, 0]), args.methods), args.out, "p_cum")

    final = F[..., -1]
    metrics = {
        "settings": {**settings, "n_steps": args.n_steps, "eta": args.eta, "eta_homeo": args.eta_homeo, "seed": args.seed},
        "final_F": {m: {"mean": float(final[i].mean()), "sd": float(final[i].std())} for i, m in enumerate(args.methods)},
        "usage_cv": {m: float((p_final[i].std(-1) / p_final[i].mean(-1)).mean()) for i, m in enumerate(args.methods)},
        "usage_entropy": {m: float(entropy[i].mean()) for i, m in enumerate(args.methods)},
        "ranking_by_final_F": [args.methods[i] for i in np.argsort(final.mean(1))],
    }
    for m in metrics["ranking_by_final_F"]:
        f = metrics["final_F"][m]
        print(f"  {m:5s} F = {f['mean']:.4f} ± {f['sd']:.4f}   usage CV {metrics['usage_cv'][m]:.3f}   entropy {metrics['usage_entropy'][m]:.4f}")
    return metrics


if __name__ == "__main__":
    raise SystemExit(runner.main_for(__name__))
