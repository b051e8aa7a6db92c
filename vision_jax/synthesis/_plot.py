"""Figures of a synthesis: status (image, representation error, loss) and an animation of progress.

Work with the results of :func:`metamer`, :func:`metamer_ctf` and :func:`mad_competition`
(anything with ``losses``, ``stored`` and ``metamers`` or ``images``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vision_jax._checks import check_int

__all__ = ["synthesis_status", "animate"]


def _images(result):
    for name in ("metamers", "images"):
        if hasattr(result, name):
            return np.asarray(getattr(result, name))
    raise TypeError(f"result: expected a synthesis result with metamers or images, got {type(result).__name__}")


def _as_map(rep: np.ndarray):
    """A representation as a 1-D curve or a 2-D map (the first of several), and a label."""
    r = np.squeeze(np.asarray(rep, np.float64))
    if r.ndim <= 1:
        return r.reshape(-1), ""
    if r.ndim == 2:
        return r, ""
    if r.shape[-1] <= 4 and r.shape[-3] > 4:  # (..., H, W, C): channels first
        r = np.moveaxis(r, -1, 0)
    maps = r.reshape((-1,) + r.shape[-2:])
    return maps[0], (f" (map 1 of {maps.shape[0]})" if maps.shape[0] > 1 else "")


def _store_every(result, store_every):
    n_store = np.asarray(result.stored).shape[1]
    if n_store == 0:
        raise ValueError("result: has no stored progress; run the synthesis with store_every")
    if store_every is None:
        store_every = max(np.asarray(result.losses).shape[1] // max(n_store - 1, 1), 1)
    return check_int("store_every", store_every, min_value=1), n_store


def _draw(fig, image, losses, iteration, rep_err, title):
    n_panels = 3 if rep_err is not None else 2
    axes = fig.subplots(1, n_panels)
    img = np.asarray(image, np.float64)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    axes[0].imshow(np.clip(img, 0, 1) if img.ndim == 3 else img, cmap="gray", vmin=None if img.ndim == 3 else 0,
                   vmax=None if img.ndim == 3 else 1, interpolation="nearest")
    axes[0].set_title(f"{title} (iteration {iteration})")
    axes[0].axis("off")
    if rep_err is not None:
        err, label = _as_map(rep_err)
        ax = axes[1]
        if err.ndim == 1:
            ax.plot(err, lw=0.8)
            ax.axhline(0, color="k", lw=0.5)
            ax.set_xlabel("representation element")
        else:
            lim = float(np.max(np.abs(err))) or 1.0
            im = ax.imshow(err, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            fig.colorbar(im, ax=ax, fraction=0.046)
            ax.axis("off")
        ax.set_title("representation error" + label)
    ax = axes[-1]
    valid = np.isfinite(losses)
    ax.semilogy(np.flatnonzero(valid), np.maximum(losses[valid], np.finfo(np.float64).tiny), lw=1)
    if 0 <= iteration < len(losses) and np.isfinite(losses[min(iteration, len(losses) - 1)]):
        ax.plot([iteration], [losses[iteration]], "o", color="C3")
    ax.set_xlabel("iteration")
    ax.set_title("loss")
    fig.tight_layout()
    return fig


def synthesis_status(result, model_fn=None, target=None, *, batch: int = 0, iteration: int | None = None,
                     store_every: int | None = None, title: str = "synthesis"):
    """Status of one synthesis: the image, its representation error and the loss so far.

    Args:
      result: a :class:`MetamerResult`, :class:`CTFResult` or :class:`MADResult`.
      model_fn, target: to show ``model_fn(image) - model_fn(target)`` (omit both to skip it;
        for multi-scale models the scales are concatenated).
      batch: which synthesis of the batch.
      iteration: show the stored image of this iteration (a multiple of ``store_every``);
        default: the final image.
      store_every: as given to the synthesis (default: inferred from the stored count).

    Returns:
      A matplotlib figure.
    """
    import matplotlib.figure

    images = _images(result)
    batch = check_int("batch", batch, min_value=0)
    if batch >= images.shape[0]:
        raise ValueError(f"batch: expected an index below {images.shape[0]}, got {batch}")
    losses = np.asarray(result.losses[batch], np.float64)
    if iteration is None:
        image, iteration = images[batch], int(np.sum(np.isfinite(losses)))
    else:
        every, n_store = _store_every(result, store_every)
        iteration = check_int("iteration", iteration, min_value=0)
        if iteration % every or iteration // every >= n_store:
            raise ValueError(f"iteration: expected a stored iteration (a multiple of {every} up to {every * (n_store - 1)}), "
                             f"got {iteration}")
        image = np.asarray(result.stored[batch, iteration // every])
    rep_err = None
    if model_fn is not None:
        if target is None:
            raise ValueError("target: give the target image to show the representation error")
        tgt = np.asarray(target)
        tgt = tgt if tgt.ndim == 4 else tgt[None]

        def rep(x):
            out = model_fn(np.asarray(x)[None])
            parts = out if isinstance(out, (tuple, list)) else [out]
            return np.concatenate([np.asarray(p, np.float64).ravel() for p in parts]) if len(parts) > 1 else np.asarray(parts[0])

        rep_err = rep(image) - rep(tgt[min(batch, tgt.shape[0] - 1)])
    fig = matplotlib.figure.Figure(figsize=(3.2 * (3 if rep_err is not None else 2), 3.0))
    return _draw(fig, image, losses, iteration, rep_err, title)


def animate(result, path, model_fn=None, target=None, *, batch: int = 0, store_every: int | None = None,
            fps: float = 5.0, title: str = "synthesis") -> Path:
    """Write the stored progress of one synthesis as a GIF/MP4 of :func:`synthesis_status` frames."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from vision_jax.plot import save_animation

    every, n_store = _store_every(result, store_every)
    n_done = int(np.asarray(result.n_iter)[batch])
    frames = []
    for slot in range(min(n_store, n_done // every + 1)):
        fig = synthesis_status(result, model_fn, target, batch=batch, iteration=slot * every, store_every=every, title=title)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        frames.append(np.asarray(canvas.buffer_rgba())[..., :3].astype(np.float64) / 255.0)
    return save_animation(np.stack(frames), path, fps=fps, vrange=(0.0, 1.0))
