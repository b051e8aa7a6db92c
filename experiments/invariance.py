"""Temporal invariance learning on a digit tapestry: MWTA sparse layer + "variable xi" invariant layer.

A 20x20 window wanders over a wrapping 30x30 tapestry of MNIST digits; the sparse layer learns
digit-part prototypes (k winners), the invariant layer integrates them over time. Seeds train
together (vmapped), epoch by epoch with a checkpoint after each in ``--out`` (an interrupted run
started again with the same arguments resumes); their analysis runs as one sweep. The invariance
claim is checked against two controls: the same sparse layer with random (renormalised)
invariant weights, and the trained network on shuffled frames.

    vision-jax invariance               # quick: 8 epochs x 10,000 frames, 3 seeds
    vision-jax invariance --full        # the reference schedule: 20 epochs x 10,000 frames
"""
import shutil

from vision_jax import runner

DESCRIPTION = "temporal invariance learning (MWTA sparse layer + variable-xi invariant layer) on a digit tapestry"


def add_arguments(parser):
    parser.add_argument("--n-seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="passes over the frames (quick 8, full 20)")
    parser.add_argument("--frames", type=int, default=10000, help="frames per epoch (the same frames every epoch)")
    parser.add_argument("--k", type=int, default=4, help="winners in the sparse layer")
    parser.add_argument("--invariant-units", type=int, default=100)
    parser.add_argument("--fresh", action="store_true", help="discard checkpoints of an earlier run in --out")


def _metrics(params, init_iw, frames, test_frames, key, k):
    import jax
    import jax.numpy as jnp

    from vision_jax.sparse import invariance as inv

    s, u, y = inv.encode(params, test_frames, k=k)
    random_iw = inv.InvarianceParams(params.sw, 9.0 * init_iw / jnp.sum(init_iw, axis=1, keepdims=True))
    _, u_rand, y_rand = inv.encode(random_iw, test_frames, k=k)
    shuffled = test_frames[jax.random.permutation(key, test_frames.shape[0])]
    _, u_shuf, y_shuf = inv.encode(params, shuffled, k=k)
    cov = inv.coverage(params)
    return {
        "persistence_trained": inv.winner_persistence(u),
        "persistence_random_iw": inv.winner_persistence(u_rand),
        "persistence_shuffled": inv.winner_persistence(u_shuf),
        "persistence_sparse_code": inv.winner_persistence(s),
        "slowness_trained": inv.slowness(u),
        "slowness_random_iw": inv.slowness(u_rand),
        "slowness_shuffled": inv.slowness(u_shuf),
        "dead_units": inv.dead_units(s).astype(jnp.float32),
        "coverage_min": jnp.min(cov),
        "coverage_mean": jnp.mean(cov),
        "coverage_max": jnp.max(cov),
        "invariant_error": inv.invariant_error(params, s, y),
    }


def run(args):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from vision_jax import data, plot
    from vision_jax.checkpoint import run_chunks
    from vision_jax.sparse import invariance as inv
    from vision_jax.sweep import sweep

    epochs = args.epochs or (20 if args.full else 8)
    key = jax.random.key(args.seed)
    k_tap, k_walk, k_test, k_seeds, k_shuffle = jax.random.split(key, 5)
    tapestry = jnp.asarray(data.make_tapestry(k_tap))
    frames, _ = data.random_walk_frames(k_walk, tapestry, args.frames)
    test_frames, _ = data.random_walk_frames(k_test, tapestry, 3000)
    hyper = inv.InvarianceHyper()

    seed_keys = jax.random.split(k_seeds, args.n_seeds)
    init = jax.vmap(lambda k: inv.init_params(k, 900, frames.shape[1], args.invariant_units))(seed_keys)
    one_epoch = jax.jit(jax.vmap(lambda p: inv._train(p, frames, hyper, args.k, 1, 2000)))

    def epoch(params, _index):  # every seed, one epoch (the invariant output starts from 0 each epoch)
        params, stats = one_epoch(params)
        return params, stats.sparse_error[:, 0]

    print(f"{args.n_seeds} seeds x {epochs} epochs x {args.frames} frames, k={args.k}, {args.invariant_units} invariant units")
    checkpoints = args.out / "checkpoints"
    if args.fresh and checkpoints.exists():
        shutil.rmtree(checkpoints)
    fingerprint = {"seed": args.seed, "n_seeds": args.n_seeds, "epochs": epochs, "frames": args.frames, "k": args.k,
                   "invariant_units": args.invariant_units}
    trained, errors = run_chunks(epoch, init, n_chunks=epochs, directory=checkpoints, fingerprint=fingerprint, desc="epochs")

    def seed_metrics(key, h):  # the analysis and its controls, one sweep configuration per seed
        params = inv.InvarianceParams(h["sw"], h["iw"])
        return _metrics(params, h["iw0"], frames, test_frames, key, args.k)

    result = sweep(seed_metrics, {"sw": trained.sw, "iw": trained.iw, "iw0": init.iw}, product=False, key=k_shuffle,
                   devices=runner.sweep_devices(args))
    out = {name: np.asarray(v) for name, v in result.outputs.items()}
    out["sparse_error"] = np.asarray(errors).T  # (seeds, epochs)
    out["sw"], out["iw"] = np.asarray(trained.sw), np.asarray(trained.iw)
    params = inv.InvarianceParams(jnp.asarray(out["sw"][0]), jnp.asarray(out["iw"][0]))

    # figures (seed 0)
    runner.save_figure(plot.curves({"sparse reconstruction": out["sparse_error"]}, xlabel="epoch",
                                   ylabel="sum ||v - r||^2 / sum ||v||^2", logy=True), args.out, "sparse_error")
    cov = np.asarray(inv.coverage(params))
    runner.save_figure(plot.imshow(cov.reshape(30, 30), titles=["coverage iw.sum(0), 30x30 sparse units"], colorbar=True, zoom=1.6),
                       args.out, "coverage")
    order = np.argsort(cov)
    runner.save_figure(plot.tiles(np.asarray(params.sw)[np.concatenate([order[:16], order[-16:]])], n_cols=16,
                                  title="least (top row) and most (bottom row) covered sparse prototypes"), args.out, "coverage_prototypes")
    runner.save_figure(plot.tiles(np.asarray(params.iw @ params.sw), title="composite prototypes iw @ sw"), args.out, "composite_prototypes")
    groups = np.asarray(inv.affinity_groups(params, 8))[:12]
    runner.save_figure(plot.tiles(np.asarray(params.sw)[groups.ravel()], n_cols=8,
                                  title="affinity groups: strongest 8 sparse prototypes of 12 invariant units (one per row)"),
                       args.out, "affinity_groups")
    names = ["trained", "random_iw", "shuffled"]
    persistence = {n: out[f"persistence_{n}"] for n in names}
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, metric, label in ((axes[0], "persistence", "winner persistence (higher = more invariant)"),
                              (axes[1], "slowness", "slowness <du^2>/var(u) (lower = slower)")):
        vals = [out[f"{metric}_{n}"] for n in names]
        ax.bar(names, [v.mean() for v in vals], yerr=[v.std() for v in vals], color=["C0", "C7", "C7"])
        ax.set_title(label, fontsize=9)
    fig.tight_layout()
    runner.save_figure(fig, args.out, "invariance_vs_controls")
    s, u, y = inv.encode(params, test_frames[:200], k=args.k)
    recon = s @ params.sw
    movie = np.concatenate([np.asarray(test_frames[:200]).reshape(-1, 20, 20), np.asarray(recon).reshape(-1, 20, 20) / max(float(recon.max()), 1e-6),
                            np.repeat(np.repeat(np.asarray(y).reshape(-1, 10, 10) / max(float(y.max()), 1e-6), 2, 1), 2, 2)], axis=2)
    plot.save_animation(movie, args.out / "input_reconstruction_invariant.gif", fps=10, scale=4)

    summary = {k: {"mean": float(v.mean()), "sd": float(v.std())} for k, v in out.items() if v.ndim == 1}
    metrics = {
        "settings": {"epochs": epochs, "frames": args.frames, "k": args.k, "invariant_units": args.invariant_units,
                     "n_seeds": args.n_seeds, **{f: float(v) for f, v in zip(hyper._fields, hyper)}},
        "sparse_error_by_epoch": out["sparse_error"].mean(0).tolist(),
        **summary,
        "trained_beats_both_controls": bool(np.all(persistence["trained"] > np.maximum(persistence["random_iw"], persistence["shuffled"]))),
    }
    print("winner persistence  trained {:.3f}  random iw {:.3f}  shuffled {:.3f}".format(*(persistence[n].mean() for n in names)))
    print("sparse reconstruction error {:.3f} -> {:.3f}".format(out["sparse_error"][:, 0].mean(), out["sparse_error"][:, -1].mean()))
    return metrics


if __name__ == "__main__":
    raise SystemExit(runner.main_for(__name__))
