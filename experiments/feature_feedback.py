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
    parser.add_argument("--steps", type=int, default=None, help="training steps per layer (default 600, --full 40000)")
    parser.add_argument("--feedback-size", type=int, default=None, help="feedback frame side in pixels (default 128, --full 256)")
    parser.add_argument("--frames", type=int, default=None, help="feedback frames (default 400, --full 2000)")


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
    import jax
    import jax.numpy as jnp
    import matplotlib.pyplot as plt
    import numpy as np
    import optax

    import vision_jax.autoencoder as ae
    from vision_jax import plot

    full = args.full
    steps = args.steps or (40000 if full else 600)
    size = args.feedback_size or (256 if full else 128)
    n_frames = args.frames or (2000 if full else 400)
    train, test, source = _load_data(args, 50000 if full else 4000, 1000 if full else 200)
    mean = jnp.asarray(train.mean(axis=(0, 1, 2)))
    train_j, test_j = jnp.asarray(train), jnp.asarray(test)
    key = jax.random.key(args.seed)
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    opt = optax.adam(optax.exponential_decay(3e-3, steps // 2, 0.3))
    metrics = {"data": source, "n_train": int(train.shape[0]), "n_test": int(test.shape[0]), "steps_per_layer": steps,
               "source_test_l2": SOURCE_L2}

    # one layer, the source's best single-layer model (AE-7)
    cfg1 = ae.AutoencoderConfig(features=(12,), encoder_kernel=5, decoder_kernel=6, pooling="max", activation="tanh")
    p1, loss1 = ae.train_layer(ae.init_params(k1, cfg1, mean=mean), train_j, 0, cfg1, key=k2, optimizer=opt, steps=steps, batch_size=100)
    rec1 = np.asarray(jax.jit(lambda p, x: ae.apply(p, x, cfg1))(p1, test_j))
    cubic2, cubic4 = ae.cubic_baseline(test, 2), ae.cubic_baseline(test, 4)
    metrics["one_layer"] = {"test_l2": ae.caffe_l2(rec1, test), "test_psnr_db": ae.psnr(rec1, test),
                            "cubic_l2": ae.caffe_l2(cubic2, test), "cubic_psnr_db": ae.psnr(cubic2, test)}

    # two layers: greedy stacking (layer 1 frozen while layer 2 learns layer-1 codes), then fine-tuning on both losses
    cfg2 = ae.AutoencoderConfig(features=(12, 48), encoder_kernel=5, decoder_kernel=6, pooling="max", activation="tanh")
    p2 = ae.init_params(k3, cfg2, mean=mean)
    p2 = p2._replace(layers=(p1.layers[0], p2.layers[1]))
    codes = jax.jit(lambda p, x: ae.encode(p, x, 0, cfg2))(p2, train_j)
    p2, loss2 = ae.train_layer(p2, codes, 1, cfg2, key=k4, optimizer=opt, steps=steps, batch_size=100)
    apply2 = jax.jit(lambda p, x: ae.apply(p, x, cfg2))
    rec2_stacked = np.asarray(apply2(p2, test_j))
    p2f, loss_ft = ae.fine_tune(p2, train_j, cfg2, key=k5, optimizer=optax.adam(3e-4), steps=max(steps // 3, 1), batch_size=100)
    rec2 = np.asarray(apply2(p2f, test_j))
    metrics["two_layers"] = {"stacked_test_l2": ae.caffe_l2(rec2_stacked, test), "finetuned_test_l2": ae.caffe_l2(rec2, test),
                             "finetuned_psnr_db": ae.psnr(rec2, test), "cubic_l2": ae.caffe_l2(cubic4, test),
                             "cubic_psnr_db": ae.psnr(cubic4, test)}

    # figures
    n = 8
    rows = np.concatenate([test[:n], np.clip(rec1[:n], 0, 1), cubic2[:n], np.clip(rec2[:n], 0, 1), cubic4[:n]])
    fig = plot.imshow(list(rows), col_wrap=n, vrange=(0, 1), zoom=0.6)
    fig.suptitle("rows: input / 1-layer AE / cubic x2 / 2-layer AE (fine-tuned) / cubic x4")
    runner.save_figure(fig, args.out, "reconstructions")
    runner.save_figure(plot.tiles(np.asarray(p1.layers[0].enc_w), title="encoder filters (5x5x3)"), args.out, "encoder_filters")
    dec = np.asarray(p1.layers[0].dec_w).transpose(0, 1, 3, 2)  # (k, k, 3, 12): one RGB tile per feature
    runner.save_figure(plot.tiles(dec, title="decoder filters (6x6x3)"), args.out, "decoder_filters")
    h1 = np.asarray(ae.encode(p1, test_j[:1], 0, cfg1))[0]
    runner.save_figure(plot.imshow(list(h1.transpose(2, 0, 1)), titles=[f"f{i}" for i in range(12)], col_wrap=6, vrange="sym", cmap="RdBu_r"),
                       args.out, "pooled_responses")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, l in (("layer 1", loss1), ("layer 2 (codes)", loss2), ("fine-tune (both)", loss_ft)):
        ax.semilogy(np.asarray(l), label=name, lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("minibatch MSE")
    ax.legend()
    runner.save_figure(fig, args.out, "training_loss")

    # video feedback, learned and random weights
    import time

    init_fn, _ = ae.feedback_process(p2f, cfg2)
    state = init_fn(jax.random.key(args.seed + 7), size, size)
    video = {}
    for name, params in (("learned", p2f), ("random", ae.random_feedback_params(jax.random.key(args.seed + 8), cfg2))):
        ae.run_feedback(params, cfg2, state, 2)[1].block_until_ready()
        t0 = time.perf_counter()
        _, frames = ae.run_feedback(params, cfg2, state, n_frames, record_every=2)
        frames.block_until_ready()
        fps = n_frames / (time.perf_counter() - t0)
        video[name] = ae.render_frames(frames)
        metrics[f"feedback_{name}_fps"] = fps
        plot.save_animation(video[name], runner.prepare_out(args.out) / f"feedback_{name}.gif", fps=15, vrange=(0, 1))
    picks = np.linspace(0, video["random"].shape[0] - 1, 5).astype(int)
    shots = [video[k][i] for k in ("learned", "random") for i in picks]
    fig = plot.imshow(shots, titles=[f"{k} t={2 * (i + 1)}" for k in ("learned", "random") for i in picks], col_wrap=5, vrange=(0, 1), zoom=0.7)
    runner.save_figure(fig, args.out, "feedback_frames")
    metrics["feedback"] = {"size": size, "frames": n_frames, "layers": 2, "fb": 1.333, "tblur": 0.5}
    return metrics


if __name__ == "__main__":
    raise SystemExit(runner.main_for(__name__))
