"""Virtual Retina cascade: ON/OFF responses to classic stimuli, contrast gain control, and fitting.

python experiments/retina.py --out out/retina      (or: vision-jax retina)
"""
from vision_jax import runner

DESCRIPTION = "Virtual Retina cascade (cat X): step, spot, grating, bar responses; contrast gain control; multi-start fit of tau and lambda_OPL"


def add_arguments(parser):
    parser.add_argument("--preset", default="cat_x", help="retina preset (default cat_x)")
    parser.add_argument("--size", type=int, default=None, help="frame side in pixels (default 32, --full 64)")
    parser.add_argument("--fit-steps", type=int, default=None, help="optimizer steps of the fitting demo (default 300, --full 1000)")


def _centre_trace(out, H, W):
    import numpy as np

    return np.asarray(out.rates)[:, :, H // 2, W // 2]  # (T, 2): ON, OFF


def _f1(trace, dt, freq):
    import numpy as np

    t = np.arange(trace.shape[0]) * dt
    return float(2 * np.abs(np.mean(trace * np.exp(-2j * np.pi * freq * t))))


def run(args):
    import jax
    import jax.numpy as jnp
    import matplotlib.pyplot as plt
    import numpy as np

    from vision_jax import retina

    key = jax.random.key(args.seed)
    size = args.size or (64 if args.full else 32)
    fit_steps = args.fit_steps or (1000 if args.full else 300)
    params = retina.preset(args.preset)
    cfg = params.config
    dt, bg = cfg.dt, cfg.luminosity_range / 2
    H = W = size
    ppd = cfg.pixels_per_degree
    n = int(round(1.0 / dt))  # 1 s per stimulus
    state0 = retina.init_state(params, (H, W), key=key, luminance=bg)
    metrics = {"preset": args.preset, "dt_s": dt, "pixels_per_degree": ppd, "frame_px": size}

    stimuli = {
        "full-field step": retina.full_field_step(n, (H, W), onset=n // 5, background=bg, contrast=0.5),
        "flashed spot": retina.flashed_spot(n, (H, W), radius=1.0 * ppd, onset=n // 5, duration=n // 5, background=bg, contrast=0.8),
        "drifting grating": retina.drifting_grating(n, (H, W), period=8.0 * ppd / 2, frames_per_cycle=0.25 / dt, background=bg,
                                                    contrast=0.5),
        "moving bar": retina.moving_bar(n, (H, W), width=0.5 * ppd, speed=W / n, background=bg, contrast=0.8),
    }
    fig, axes = plt.subplots(len(stimuli), 1, figsize=(8, 2.2 * len(stimuli)), sharex=True)
    responses = {}
    radii = retina.blur_radii(params)  # one compiled program for every run below of n frames (and lambda_A = 0)
    for ax, (name, movie) in zip(axes, stimuli.items()):
        _, out = retina.run(params, state0, jnp.asarray(movie), stages=True, radii=radii)
        trace = _centre_trace(out, H, W)
        t = np.arange(n) * dt
        ax.plot(t, trace[:, 0], color="tab:red", label="ON rate")
        ax.plot(t, trace[:, 1], color="tab:blue", label="OFF rate")
        spikes = np.asarray(out.spikes)[:, :, H // 2, W // 2]
        for ch, colour in ((0, "tab:red"), (1, "tab:blue")):
            ts = t[spikes[:, ch] > 0]
            ax.plot(ts, np.full(ts.shape, -8.0 - 8 * ch), "|", color=colour, ms=5)
        lum = movie[:, H // 2, W // 2]
        ax2 = ax.twinx()
        ax2.plot(t, lum, color="0.6", lw=0.8)
        ax2.set_yticks([])
        ax.set_ylabel("Hz")
        ax.set_title(name, fontsize=9)
        responses[name] = {"on_peak_hz": float(trace[:, 0].max()), "off_peak_hz": float(trace[:, 1].max()),
                           "on_mean_hz": float(trace[:, 0].mean()), "off_mean_hz": float(trace[:, 1].mean()),
                           "on_spikes_per_s": float(spikes[:, 0].sum() / (n * dt)),
                           "off_spikes_per_s": float(spikes[:, 1].sum() / (n * dt))}
    axes[0].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("time (s)")
    runner.save_figure(fig, args.out, "responses")
    metrics["responses"] = responses

    # Contrast gain control: F1 of the bipolar potential per unit contrast, with and without the feedback.
    contrasts = np.array([0.05, 0.1, 0.2, 0.4, 0.8])
    freq = 4.0
    m = n
    gains = {}
    for label, p in (("with CGC", params), ("lambda_A = 0", params.replace(adaptation_amplification=0.0))):
        st = retina.init_state(p, (H, W), key=key, luminance=bg)
        g = []
        for c in contrasts:
            movie = retina.drifting_grating(m, (H, W), period=8.0 * ppd / 2, frames_per_cycle=1 / (freq * dt), background=bg,
                                            contrast=float(c))
            _, out = retina.run(p, st, jnp.asarray(movie), stages=True, radii=radii)
            v = np.asarray(out.bipolar)[m // 2:, H // 2, W // 2]
            g.append(_f1(v - v.mean(), dt, freq) / c)
        gains[label] = np.array(g)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for label, g in gains.items():
        ax.semilogx(contrasts, g / g[0], "o-", label=label)
    ax.set_xticks(contrasts, [f"{c:g}" for c in contrasts])
    ax.minorticks_off()
    ax.set_xlabel("contrast")
    ax.set_ylabel("bipolar F1 gain (relative)")
    ax.legend(fontsize=8)
    ax.set_title(f"contrast gain control, {freq:g} Hz grating", fontsize=9)
    runner.save_figure(fig, args.out, "contrast_gain")
    metrics["contrast_gain"] = {"contrasts": contrasts, **{k: v for k, v in gains.items()},
                                "gain_ratio_high_over_low_with_cgc": float(gains["with CGC"][-1] / gains["with CGC"][0]),
                                "gain_ratio_high_over_low_without": float(gains["lambda_A = 0"][-1] / gains["lambda_A = 0"][0])}

    # Fitting demo: recover centre tau and lambda_OPL of several cells at once from their rates, from several
    # starting points: each start is one configuration of a vision_jax.sweep.sweep (vmapped, shardable), and
    # the 4 cells are vmapped inside it; gradients go through 2 chunks.
    small = (8, 8)
    fit_params = params.with_config(pixels_per_degree=ppd)
    st = retina.init_state(fit_params, small, key=key, luminance=bg)
    T = int(round(0.6 / dt))
    t = np.arange(T)
    flicker = bg * (1 + 0.6 * np.sign(np.sin(2 * np.pi * t * dt * 3.0)))
    movie = jnp.asarray(np.broadcast_to(flicker[:, None, None], (T,) + small).astype(np.float32))
    truth_tau = np.array([0.005, 0.01, 0.02, 0.04], np.float32)
    truth_amp = np.array([6.0, 9.0, 12.0, 15.0], np.float32)
    # one set of blur sizes (those of the shortest time constant) for the targets and the fit: one compiled program each
    fit_radii = retina.blur_radii(fit_params.replace(center_tau=0.004))
    targets = np.stack([retina.run(fit_params.replace(center_tau=a, opl_amplification=b), st, movie, spikes=False,
                                   radii=fit_radii)[1].rates for a, b in zip(truth_tau, truth_amp)])
    starts = {"center_tau": [0.008, 0.015, 0.03], "opl_amplification": [7.0, 10.0, 14.0]}
    result = retina.multistart_fit(fit_params, st, movie, targets, starts, fields=("center_tau", "opl_amplification"),
                                   steps=fit_steps, learning_rate=0.03, batched=True, chunk_size=T // 2, key=key,
                                   radii=fit_radii)
    tau_fit, amp_fit = np.asarray(result.params.center_tau), np.asarray(result.params.opl_amplification)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for i, losses in enumerate(result.losses):
        axes[0].semilogy(losses, label=f"start {i}: tau {starts['center_tau'][i] * 1000:g} ms, "
                                       f"lambda {starts['opl_amplification'][i]:g}")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("MSE (sum over cells)")
    axes[0].legend(fontsize=7)
    axes[1].plot(truth_tau * 1000, tau_fit * 1000, "o", label="center tau (ms)")
    axes[1].plot(truth_amp, amp_fit, "s", label="lambda_OPL")
    lim = [0, max(truth_tau.max() * 1000, truth_amp.max()) * 1.1]
    axes[1].plot(lim, lim, "k:", lw=0.8)
    axes[1].set_xlabel("true")
    axes[1].set_ylabel("fitted (best start per cell)")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"fitting 4 cells x {len(starts['center_tau'])} starts at once (sweep + vmap), gradients through 2 chunks",
                 fontsize=9)
    runner.save_figure(fig, args.out, "fit")
    metrics["fit"] = {"true_center_tau_s": truth_tau, "fitted_center_tau_s": tau_fit,
                      "true_opl_amplification": truth_amp, "fitted_opl_amplification": amp_fit,
                      "starts": starts, "best_start_per_cell": result.best, "final_loss_per_start_and_cell": result.final_losses,
                      "max_relative_error_tau": float(np.max(np.abs(tau_fit / truth_tau - 1))),
                      "max_relative_error_amplification": float(np.max(np.abs(amp_fit / truth_amp - 1))),
                      "loss_first": float(result.losses[:, 0].min()), "loss_last": float(result.losses[:, -1].min()),
                      "steps": fit_steps}
    return metrics


if __name__ == "__main__":
    raise SystemExit(runner.main_for(__name__))
