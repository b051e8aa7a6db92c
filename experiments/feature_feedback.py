"""Feature feedback: train a convolutional pooling autoencoder layer by layer, compare its
reconstructions with cubic interpolation, and run the video feedback process across its layers.

python experiments/feature_feedback.py --out out/feature-feedback      (or: vision-jax feature-feedback)
"""
from vision_jax import runner

DESCRIPTION = "layer-wise conv autoencoder vs cubic baseline, and a video feedback process across its layers (about a minute)"

# The source's test-batch L2 (Caffe EuclideanLoss per 100 CIFAR-10 images, /256, mean-subtracted unless noted)
SOURCE_L2 = {
    "AE-0 12x3x3, dec 4x4, max, tanh": 1.473,
    "AE-7 12x5x5, dec 6x6, max, tanh": 0.956,
    "AE-5 ReLU, no mean subtraction": 3.137,
    "AE-9 two layers fine-tuned (l2_1, data)": 3.248,
}


def add_arguments(parser):
    parser.add_argument("--data", choices=("natural", "cifar10"), default="natural",
                        help="natural: 32x32 crops of the embedded photographs (default, offline); cifar10: tfds, prepared locally")
    parser.add_argument("--data-dir", default=None, help="tfds data_dir holding a prepared cifar10")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps of layer 1 (default 600, --full 40000); layer 2 trains steps/2, fine-tuning steps/4")
    parser.add_argument("--batch-size", type=int, default=None, help="minibatch size (default 25, --full 100)")
    parser.add_argument("--feedback-size", type=int, default=None, help="feedback frame side in pixels (default 128, --full 256)")
    parser.add_argument("--frames", type=int, default=None, help="feedback frames (default 400, --full 2000); the GIFs keep every 4th")
    parser.add_argument("--variants", action="store_true",
                        help="also train the source's AE-0 (3x3 encoder, 4x4 decoder) and AE-5 (ReLU, no mean subtraction); on with --full")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help="training steps between orbax checkpoints in OUT/checkpoints (default 200, --full 2000); rerun with the same arguments to resume")
    parser.add_argument("--fresh", action="store_true", help="discard checkpoints of an earlier run in --out")


def _load_data(args, n_train, n_test):
    import numpy as np

    from vision_jax.autoencoder import colour_crops

    if args.data == "cifar10":
        from vision_jax.data import load_dataset

        try:
            train, _ = load_dataset("cifar10", "train", args.data_dir, max_examples=n_train)
            test, _ = load_dataset("cifar10", "test", args.data_dir, max_examples=n_test)
            return train.astype(np.float32) / 256.0, test.astype(np.float32) / 256.0, "cifar10"
        except (FileNotFoundError, ImportError) as err:
            print(f"cifar10 not available ({str(err)[:160]}...); using 32x32 crops of the embedded photographs")
    return colour_crops(args.seed, n_train), colour_crops(args.seed + 1, n_test, split="test"), "natural crops"


def run(args):
    import shutil
    import time

    import jax
    import jax.numpy as jnp
    import matplotlib.pyplot as plt
    import numpy as np
    import optax

    import vision_jax.autoencoder as ae
    from vision_jax import plot

    full = args.full
    steps = args.steps or (40000 if full else 600)
    batch = args.batch_size or (100 if full else 25)
    size = args.feedback_size or (256 if full else 128)
    n_frames = args.frames or (2000 if full else 400)
    every = args.checkpoint_every or (2000 if full else 200)
    checkpoints = args.out / "checkpoints"
    if args.fresh and checkpoints.exists():
        shutil.rmtree(checkpoints)
    train, test, source = _load_data(args, 50000 if full else 4000, 1000 if full else 200)
    n_train = train.shape[0]
    mean = train.mean(axis=(0, 1, 2))
    both = np.concatenate([train, test])  # one encoder call (one program) for the training codes and the test set
    train_j, test_j = jnp.asarray(train), jnp.asarray(test)
    k1, k2, k3, k4, k5, k6 = (jax.random.key(args.seed * 1000 + i) for i in range(6))
    steps2, ft_steps = max(steps // 2, 1), max(steps // 4, 1)
    # Adam with a cosine decay to a tenth: small minibatches and a constant-then-decaying rate reach
    # the cubic baseline in a few hundred steps (a rate decayed early stalls far above it)
    lr = 3e-3 if full else 1e-2

    def adam(n, rate=lr):
        return optax.adam(optax.cosine_decay_schedule(rate, n, alpha=0.1))

    common = dict(batch_size=batch, save_every=every,
                  fingerprint={"data": source, "seed": args.seed, "n_train": int(n_train)})
    metrics = {"data": source, "n_train": int(n_train), "n_test": int(test.shape[0]), "batch_size": batch,
               "steps": {"layer1": steps, "layer2": steps2, "finetune": ft_steps}, "source_test_l2": SOURCE_L2}
    cubic2, cubic4 = ae.cubic_baseline(test, 2), ae.cubic_baseline(test, 4)

    # greedy stacking of the source's best single layer (AE-7: 12 filters 5x5, 6x6 decoder, max, tanh) and a
    # second layer (48 filters, as AE-8/9): layer 1 alone, then layer 2 on its frozen codes, then both end to end
    cfg = ae.AutoencoderConfig(features=(12, 48), encoder_kernel=5, decoder_kernel=6, pooling="max", activation="tanh")
    p = ae.init_params(k1, cfg, mean=mean)
    p, loss1 = ae.train_layer(p, train_j, 0, cfg, key=k2, optimizer=adam(steps), steps=steps, checkpoint_dir=checkpoints / "layer1", **common)
    codes = np.asarray(ae.encode(p, both, 0, cfg))
    rec1 = np.asarray(ae.decode(p, codes[n_train:], 0, cfg))  # the one-layer autoencoder on the test set
    metrics["one_layer"] = {"test_l2": ae.caffe_l2(rec1, test), "test_psnr_db": ae.psnr(rec1, test),
                            "cubic_l2": ae.caffe_l2(cubic2, test), "cubic_psnr_db": ae.psnr(cubic2, test)}
    p, loss2 = ae.train_layer(p, codes[:n_train], 1, cfg, key=k3, optimizer=adam(steps2), steps=steps2, checkpoint_dir=checkpoints / "layer2", **common)
    rec2_stacked = np.asarray(ae.apply(p, test_j, cfg))
    pf, loss_ft = ae.fine_tune(p, train_j, cfg, key=k4, optimizer=adam(ft_steps, lr / 10), steps=ft_steps,
                               checkpoint_dir=checkpoints / "finetune", **common)
    rec2 = np.asarray(ae.apply(pf, test_j, cfg))
    metrics["two_layers"] = {"stacked_test_l2": ae.caffe_l2(rec2_stacked, test), "stacked_psnr_db": ae.psnr(rec2_stacked, test),
                             "finetuned_test_l2": ae.caffe_l2(rec2, test), "finetuned_psnr_db": ae.psnr(rec2, test),
                             "cubic_l2": ae.caffe_l2(cubic4, test), "cubic_psnr_db": ae.psnr(cubic4, test)}

    if args.variants or full:  # the source's other single layers
        variants = {"AE-0 12x3x3, dec 4x4, max, tanh": dict(encoder_kernel=3, decoder_kernel=4),
                    "AE-5 ReLU, no mean subtraction": dict(encoder_kernel=3, decoder_kernel=4, activation="relu", subtract_mean=False),
                    "AE-12 12x5x5, dec 6x6, mean pooling": dict(encoder_kernel=5, decoder_kernel=6, pooling="mean")}
        metrics["variants"] = {}
        for i, (name, kw) in enumerate(variants.items()):
            vcfg = ae.AutoencoderConfig(features=(12,), **kw)
            vp = ae.init_params(jax.random.key(args.seed * 1000 + 10 + i), vcfg, mean=mean)
            vp, _ = ae.train_layer(vp, train_j, 0, vcfg, key=jax.random.key(args.seed * 1000 + 20 + i), optimizer=adam(steps), steps=steps,
                                   checkpoint_dir=checkpoints / f"variant{i}", **common)
            vrec = np.asarray(ae.apply(vp, test_j, vcfg))
            metrics["variants"][name] = {"test_l2": ae.caffe_l2(vrec, test), "test_psnr_db": ae.psnr(vrec, test)}

    # figures
    n = 8
    rows = np.concatenate([test[:n], np.clip(rec1[:n], 0, 1), cubic2[:n], np.clip(rec2[:n], 0, 1), cubic4[:n]])
    fig = plot.imshow(list(rows), col_wrap=n, vrange=(0, 1), zoom=0.6)
    fig.suptitle("rows: input / 1-layer AE / cubic x2 / 2-layer AE (fine-tuned) / cubic x4")
    runner.save_figure(fig, args.out, "reconstructions")
    runner.save_figure(plot.tiles(np.asarray(p.layers[0].enc_w), title="encoder filters (5x5x3)"), args.out, "encoder_filters")
    dec = np.asarray(p.layers[0].dec_w).transpose(0, 1, 3, 2)  # (k, k, 3, 12): one RGB tile per feature
    runner.save_figure(plot.tiles(dec, title="decoder filters (6x6x3)"), args.out, "decoder_filters")
    h1 = np.asarray(codes[n_train])
    runner.save_figure(plot.imshow(list(h1.transpose(2, 0, 1)), titles=[f"f{i}" for i in range(12)], col_wrap=6, vrange="sym", cmap="RdBu_r"),
                       args.out, "pooled_responses")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, l in (("layer 1", loss1), ("layer 2 (codes)", loss2), ("fine-tune (both)", loss_ft)):
        ax.semilogy(np.asarray(l), label=name, lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("minibatch MSE")
    ax.legend()
    runner.save_figure(fig, args.out, "training_loss")

    # video feedback, learned and random weights (one compiled program for both)
    init_fn, _ = ae.feedback_process(pf, cfg)
    state = init_fn(jax.random.key(args.seed + 7), size, size)
    video = {}
    keep = next(d for d in (4, 2, 1) if n_frames % d == 0)  # frames kept in the GIFs: every 4th
    for name, params in (("learned", pf), ("random", ae.random_feedback_params(jax.random.key(args.seed + 8), cfg))):
        t0 = time.perf_counter()
        _, frames = ae.run_feedback(params, cfg, state, n_frames, record_every=keep)
        frames.block_until_ready()
        if name == "random":  # the learned run compiled the program
            metrics["feedback_fps"] = n_frames / (time.perf_counter() - t0)
        video[name] = ae.render_frames(frames)
        plot.save_animation(video[name], runner.prepare_out(args.out) / f"feedback_{name}.gif", fps=10, vrange=(0, 1))
    picks = np.linspace(0, video["random"].shape[0] - 1, 5).astype(int)
    shots = [video[k][i] for k in ("learned", "random") for i in picks]
    fig = plot.imshow(shots, titles=[f"{k} t={keep * (i + 1)}" for k in ("learned", "random") for i in picks], col_wrap=5, vrange=(0, 1), zoom=0.7)
    runner.save_figure(fig, args.out, "feedback_frames")
    metrics["feedback"] = {"size": size, "frames": n_frames, "layers": 2, "fb": 1.333, "tblur": 0.5}
    return metrics


if __name__ == "__main__":
    raise SystemExit(runner.main_for(__name__))
