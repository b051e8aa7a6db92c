"""Long runs in compiled chunks: progress bar, checkpoints every N chunks, exact resume.

A long training loop is a Python loop over compiled chunks (each chunk a ``lax.scan`` of many
steps). :func:`run_chunks` drives that loop, shows a progress bar, saves the carry and the
per-chunk outputs with orbax every ``save_every`` chunks, and on start resumes from the latest
checkpoint in ``directory``. Since each chunk is a pure function of the carry and its index,
a run interrupted and started again with the same arguments ends with exactly the same result
as an uninterrupted one. Ctrl-C saves the last completed chunk before stopping.

    def chunk(carry, index):             # jitted by the caller; index is a traced int32
        carry, losses = lax.scan(step, carry, xs_for(index))
        return carry, losses

    carry, losses = run_chunks(chunk, carry0, n_chunks=100, directory="out/run/checkpoints",
                               fingerprint={"eta": 0.02, "seed": 0})
    # losses: leaves stacked to (n_chunks, ...) per chunk output

``fingerprint`` (a JSON-able dict of the run's arguments) is stored with the checkpoints; a
directory written with a different fingerprint is refused rather than silently resumed.
"""
from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from vision_jax._checks import check_callable, check_int
from vision_jax.runner import progress

__all__ = ["run_chunks", "latest_step"]

_FINGERPRINT = "fingerprint.json"


def _is_key(x) -> bool:
    return isinstance(x, (jax.Array, jax.ShapeDtypeStruct)) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _encode(tree) -> dict:
    """A pytree -> {"0": leaf, ...} with typed PRNG keys stored as their raw key data."""
    leaves = jax.tree.leaves(tree)
    return {str(i): np.asarray(jax.random.key_data(x) if _is_key(x) else x) for i, x in enumerate(leaves)}


def _decode(stored: dict, like):
    """Inverse of :func:`_encode`, with the structure, dtypes and key types of ``like``."""
    leaves, treedef = jax.tree.flatten(like)
    out = []
    for i, ref in enumerate(leaves):
        x = stored[str(i)]
        if _is_key(ref):
            impl = jax.random.key_impl(ref) if isinstance(ref, jax.Array) else None
            out.append(jax.random.wrap_key_data(jnp.asarray(x), impl=impl))
        else:
            out.append(np.asarray(x, dtype=ref.dtype))
    return jax.tree.unflatten(treedef, out)


def _manager(directory: Path):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=False)
    return ocp.CheckpointManager(directory.resolve(), options=options)


def latest_step(directory: Path | str) -> int | None:
    """Number of chunks completed by the latest checkpoint in ``directory`` (None if none)."""
    directory = Path(directory)
    if not directory.exists():
        return None
    with _manager(directory) as mngr:
        return mngr.latest_step()


def _check_fingerprint(directory: Path, fingerprint: dict | None) -> None:
    path = directory / _FINGERPRINT
    text = json.dumps(fingerprint or {}, sort_keys=True, default=str)
    if path.exists():
        if path.read_text() != text:
            raise ValueError(
                f"directory: {directory} holds checkpoints of a run with other arguments "
                f"({path.read_text()}), not {text}; use another --out or delete it"
            )
    else:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def run_chunks(
    chunk_fn: Callable[[Any, jax.Array], tuple[Any, Any]],
    carry,
    *,
    n_chunks: int,
    directory: Path | str | None = None,
    save_every: int = 1,
    fingerprint: dict | None = None,
    desc: str = "",
    show_progress: bool | None = None,
):
    """Run ``carry, out = chunk_fn(carry, i)`` for ``i`` in ``range(n_chunks)``.

    Args:
      chunk_fn: ``(carry, index) -> (carry, outputs)``, a pure (ideally jitted) function;
        ``index`` is passed as an int32 array so that it does not trigger recompilation.
      carry: initial carry pytree (typed PRNG keys allowed).
      n_chunks: number of chunks (>= 1).
      directory: checkpoint folder; ``None`` disables checkpointing.
      save_every: save after every this many chunks (and always after the last).
      fingerprint: JSON-able description of the run, checked on resume.
      desc: progress bar label.
      show_progress: force the progress bar on/off (default: on when stderr is a terminal).

    Returns:
      ``(carry, outputs)`` with the per-chunk outputs stacked along a new leading axis.
    """
    check_callable("chunk_fn", chunk_fn)
    n_chunks = check_int("n_chunks", n_chunks, min_value=1)
    save_every = check_int("save_every", save_every, min_value=1)
    outputs: list = []
    start = 0
    mngr = None
    if directory is not None:
        import orbax.checkpoint as ocp

        directory = Path(directory)
        _check_fingerprint(directory, fingerprint)
        mngr = _manager(directory)
        step = mngr.latest_step()
        if step is not None:
            restored = mngr.restore(step, args=ocp.args.StandardRestore())
            carry = jax.tree.map(jnp.asarray, _decode(restored["carry"], carry))
            out_like = jax.eval_shape(chunk_fn, carry, jnp.asarray(0, jnp.int32))[1]
            stacked = _decode(restored["outputs"], out_like)
            outputs = [jax.tree.map(lambda x: x[i], stacked) for i in range(int(step))]
            start = int(step)

    def save(done: int) -> None:
        if mngr is None or done == 0 or mngr.latest_step() == done:
            return
        import orbax.checkpoint as ocp

        state = {"carry": _encode(carry), "outputs": _encode(_stack(outputs))}
        mngr.save(done, args=ocp.args.StandardSave(state), force=True)
        mngr.wait_until_finished()

    done = start
    try:
        with progress(range(start, n_chunks), total=n_chunks, desc=desc, disable=None if show_progress is None else not show_progress) as bar:
            bar.update(start)
            for i in range(start, n_chunks):
                new_carry, out = chunk_fn(carry, jnp.asarray(i, jnp.int32))
                jax.block_until_ready(new_carry)
                # Only a completed chunk changes the state, so an interrupt leaves a consistent carry.
                carry = new_carry
                outputs.append(jax.tree.map(np.asarray, out))
                done = i + 1
                bar.update(1)
                if done % save_every == 0 or done == n_chunks:
                    save(done)
    except KeyboardInterrupt:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            save(done)
        finally:
            signal.signal(signal.SIGINT, previous)
        raise
    finally:
        if mngr is not None:
            mngr.close()
    return carry, _stack(outputs)


def _stack(outputs: list):
    if not outputs:
        return None
    return jax.tree.map(lambda *xs: np.stack(xs), *outputs)
