"""Hebbian dictionary learning with homeostasis (Perrinet 2019), as compiled chunks.

One iteration, on a batch ``X`` ``(K, M)`` drawn at random from the patches:
  1. code it by matching pursuit with the current homeostasis (gains, or ``P_cum`` for HEH);
  2. update the homeostasis from these codes (so coding used the previous statistics);
  3. Hebbian gradient ``g = -(1/K) A^T (X - A D)`` through an optax optimizer (Adam with
     ``beta1 = beta2 = 0.99``, ``eps = 1e-10`` by default, or plain SGD), then unit-norm rows.
Every ``record_every`` iterations a fixed set of ``record_size`` patches is coded with plain MP
and the paper's cost is recorded: ``F = ||X - A D|| / ||X|| + 0.0005 * sum_ij |P_cum_ij - mean_i P_cum_ij|``,
with the entropy of atom usage and the activation probabilities.

:func:`learn_chunk` is the pure, vmappable unit (``record_every`` iterations as one
``lax.scan``); :func:`learn_dictionary` drives one run and :func:`learn_dictionaries` runs several
methods x seeds as one vmapped computation, each with a progress bar (and optional checkpoints)
between chunks.
"""
from __future__ import annotations

from functools import lru_cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from vision_jax._checks import check_array, check_choice, check_int, check_key, check_keys, check_nonnegative, check_positive, check_probability
from vision_jax._compile import jit_with_cpu_options
from vision_jax.sparse._homeostasis import HEH, HomeostasisState, entry_statistics, init_state, method_index, p_cum_error, update_from_statistics
from vision_jax.sparse._mp import encode, encode_entries, to_dense

__all__ = ["LearnConfig", "LearnState", "Record", "LearnResult", "init_dictionary", "init_learning", "learn_chunk",
           "learn_dictionary", "learn_dictionaries", "usage_entropy"]

F_WEIGHT = 0.0005  # weight of the P_cum spread in the paper's cost F


class LearnConfig(NamedTuple):
    """Numeric hyperparameters (each a scalar, or a stacked array under vmap)."""

    method: jax.Array  # int32 index into METHODS
    eta: jax.Array  # optimizer learning rate
    eta_homeo: jax.Array
    alpha_homeo: jax.Array
    C: jax.Array  # HEH non-linearity scale
    alpha_mp: jax.Array  # coefficient fraction on the HEH path
    beta1: jax.Array
    beta2: jax.Array


class LearnState(NamedTuple):
    dictionary: jax.Array  # (N, M) unit rows
    opt_state: optax.OptState
    homeo: HomeostasisState
    key: jax.Array
    iteration: jax.Array  # () int32


class Record(NamedTuple):
    """Monitoring values at the end of a chunk (stacked over chunks in a history)."""

    iteration: jax.Array
    F: jax.Array
    error: jax.Array  # relative L2 residual of plain MP
    qerror: jax.Array  # spread of the P_cum curves
    entropy: jax.Array  # normalised entropy of atom usage (1 = uniform)
    p: jax.Array  # (N,) activation probabilities


class LearnResult(NamedTuple):
    dictionary: jax.Array
    homeostasis: HomeostasisState
    history: Record  # leaves (n_records, ...)


class AdamState(NamedTuple):
    count: jax.Array
    mu: jax.Array
    nu: jax.Array


def adam(learning_rate, b1, b2, eps=1e-10) -> optax.GradientTransformation:
    """Adam as an optax transformation whose betas may be traced (vmapped) arrays.

    ``optax.adam`` computes its bias correction as ``1 - b ** count`` with an int32 count, which
    fails under strict dtype promotion when ``b`` is a traced float; this one casts the count.
    """

    def init(params):
        return AdamState(jnp.zeros((), jnp.int32), jnp.zeros_like(params), jnp.zeros_like(params))

    def update(grads, state, params=None):
        del params
        count = state.count + 1
        t = count.astype(grads.dtype)
        b1_, b2_ = jnp.asarray(b1, grads.dtype), jnp.asarray(b2, grads.dtype)
        mu = b1_ * state.mu + (1 - b1_) * grads
        nu = b2_ * state.nu + (1 - b2_) * grads**2
        mu_hat = mu / (1 - b1_**t)
        nu_hat = nu / (1 - b2_**t)
        updates = -jnp.asarray(learning_rate, grads.dtype) * mu_hat / (jnp.sqrt(nu_hat) + eps)
        return updates, AdamState(count, mu, nu)

    return optax.GradientTransformation(init, update)


def _optimizer(name: str, config: LearnConfig) -> optax.GradientTransformation:
    if name == "adam":
        return adam(config.eta, config.beta1, config.beta2)
    return optax.sgd(config.eta)


def usage_entropy(codes: jax.Array) -> jax.Array:
    """Entropy of how often each atom is used in ``codes`` ``(K, N)``, divided by ``log N``."""
    counts = jnp.sum((codes != 0).astype(codes.dtype), axis=0)
    p = counts / jnp.maximum(jnp.sum(counts), 1)
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1)), 0)) / jnp.log(codes.shape[1])


def init_dictionary(key, patches: np.ndarray, n_atoms: int, init="1/f") -> jax.Array:
    """Initial dictionary ``(n_atoms, M)``: whitened 1/f-noise patches (``"1/f"``), random patches
    (``"data"``), or a given array; rows normalised."""
    M = patches.shape[1]
    side = int(round(np.sqrt(M)))
    if isinstance(init, str):
        check_choice("init", init, ("1/f", "data"))
        if init == "1/f":
            if side * side != M:
                raise ValueError(f"init: '1/f' needs square patches, got length {M}; use init='data'")
            from vision_jax.data import one_over_f_dictionary

            d = one_over_f_dictionary(key, n_atoms, side)
        else:
            idx = jax.random.choice(key, patches.shape[0], (n_atoms,), replace=patches.shape[0] < n_atoms)
            d = np.asarray(patches)[np.asarray(idx)]
    else:
        d = np.asarray(check_array("init", init, shape=(n_atoms, M)))
    d = np.asarray(d, np.float64)
    norms = np.linalg.norm(d, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("init: every initial atom needs a non-zero norm")
    return jnp.asarray(d / norms, dtype=patches.dtype)


def init_learning(key, dictionary: jax.Array, config: LearnConfig, *, nb_quant: int = 128, optimizer: str = "adam") -> LearnState:
    """The state of a run that starts from ``dictionary``."""
    opt = _optimizer(optimizer, config)
    homeo = init_state(dictionary.shape[0], nb_quant, dictionary.dtype)
    return LearnState(dictionary, opt.init(dictionary), homeo, key, jnp.zeros((), jnp.int32))


def _is_heh(method):
    return method == HEH if isinstance(method, int) else jnp.equal(method, HEH)


def _iteration(state: LearnState, config: LearnConfig, patches, *, n_steps, batch_size, optimizer, block_size, method, heh=None):
    key, sub = jax.random.split(state.key)
    x = patches[jax.random.randint(sub, (batch_size,), 0, patches.shape[0])]
    D = state.dictionary
    heh = _is_heh(method) if heh is None else heh
    one = jnp.ones((), D.dtype)
    alpha = jnp.where(heh, config.alpha_mp.astype(D.dtype), one) if not isinstance(heh, bool) else (config.alpha_mp.astype(D.dtype) if heh else one)
    C = config.C.astype(D.dtype)
    idx, coef = encode_entries(x, D, state.homeo.gain, state.homeo.p_cum, C, alpha, n_steps, heh, block_size)
    stats = entry_statistics(idx, coef, D.shape[0], C, state.homeo.p_cum.shape[1])
    homeo = update_from_statistics(state.homeo, stats, method, config.eta_homeo, config.alpha_homeo)
    residual = x
    for s in range(n_steps):  # X - A D from the n_steps atoms of each row (A is ~97 % zeros)
        residual = residual - coef[:, s, None] * D[idx[:, s]]
    grad = -(to_dense(idx, coef, D.shape[0]).T @ residual) / batch_size
    updates, opt_state = _optimizer(optimizer, config).update(grad, state.opt_state, D)
    D = D + updates
    D = D / jnp.linalg.norm(D, axis=1, keepdims=True)
    return LearnState(D, opt_state, homeo, key, state.iteration + 1)


@partial(jax.jit, static_argnames=("n_iter", "n_steps", "batch_size", "optimizer", "block_size", "method", "heh"))
def learn_chunk(state: LearnState, config: LearnConfig, patches, record_patches, *, n_iter: int, n_steps: int,
                batch_size: int, optimizer: str = "adam", block_size: int = 1024, method=None, heh: bool | None = None):
    """``n_iter`` learning iterations as one ``lax.scan``, then a :class:`Record`.

    ``method``: a Python int fixes the homeostasis rule at compile time; ``None`` reads it from
    ``config.method`` (traced, so that a vmapped batch of runs may mix rules). ``heh``: with a
    traced rule, ``False`` promises that no run is HEH, so that coding compiles the gain path
    only (``None``: both selection rules are computed and one kept per run).
    """
    rule = config.method if method is None else method

    def body(s, _):
        return _iteration(s, config, patches, n_steps=n_steps, batch_size=batch_size, optimizer=optimizer,
                          block_size=block_size, method=rule, heh=heh), None

    state, _ = lax.scan(body, state, None, length=n_iter)
    D = state.dictionary
    ones = jnp.ones((D.shape[0],), D.dtype)
    codes = encode(record_patches, D, ones, state.homeo.p_cum, jnp.ones((), D.dtype), jnp.ones((), D.dtype), n_steps, False, block_size)
    error = jnp.linalg.norm(record_patches - codes @ D) / jnp.linalg.norm(record_patches)
    qerror = p_cum_error(state.homeo.p_cum)
    record = Record(state.iteration, error + F_WEIGHT * qerror, error, qerror, usage_entropy(codes), state.homeo.p)
    return state, record


@lru_cache(maxsize=32)
def _vmapped_chunk(n_iter, n_steps, batch_size, optimizer, block_size, method, single: bool = False, heh=None):
    """One compiled, vmapped :func:`learn_chunk` per static setting (reused across calls).

    ``single``: the batch holds one run, which is computed unbatched (a vmap of size one turns
    the pursuit's row gathers into batched gathers, ~25 % slower on CPU) and given back with its
    leading axis.
    """
    chunk = partial(learn_chunk, n_iter=n_iter, n_steps=n_steps, batch_size=batch_size, optimizer=optimizer,
                    block_size=block_size, method=method, heh=heh)
    if single:
        def one(state, config, patches, record_patches):
            out = chunk(jax.tree.map(lambda x: x[0], state), jax.tree.map(lambda x: x[0], config), patches, record_patches)
            return jax.tree.map(lambda x: x[None], out)

        fn = one
    else:
        fn = jax.vmap(chunk, in_axes=(0, 0, None, None))
    # programs with the HEH lookup (it gathers) compile with wider vectors on CPU (see vision_jax._compile)
    return jax.jit(fn) if heh is False else jit_with_cpu_options(fn)


def learn_config(method, *, eta=0.02, eta_homeo=0.01, alpha_homeo=0.05, C=3.0, alpha_mp=0.95, beta1=0.99, beta2=0.99,
                 dtype=jnp.float32) -> LearnConfig:
    """A :class:`LearnConfig` with the reference's defaults; ``method`` is a rule's index (traced values allowed)."""
    f = partial(jnp.asarray, dtype=dtype)
    return LearnConfig(jnp.asarray(method, jnp.int32), f(eta), f(eta_homeo), f(alpha_homeo), f(C), f(alpha_mp), f(beta1), f(beta2))


def _check_common(patches, n_atoms, n_steps, n_iter, batch_size, eta, eta_homeo, alpha_homeo, C, nb_quant, record_every, record_size, optimizer):
    patches = check_array("patches", patches, ndim=2)
    check_int("n_atoms", n_atoms, min_value=1)
    check_int("n_steps", n_steps, min_value=1)
    check_int("n_iter", n_iter, min_value=1)
    check_int("batch_size", batch_size, min_value=1)
    check_positive("eta", eta)
    check_probability("eta_homeo", eta_homeo)
    check_nonnegative("alpha_homeo", alpha_homeo)
    check_positive("C", C)
    check_int("nb_quant", nb_quant, min_value=2)
    check_int("record_every", record_every, min_value=1)
    check_int("record_size", record_size, min_value=1)
    check_choice("optimizer", optimizer, ("adam", "sgd"))
    return patches


def learn_dictionaries(
    keys,
    patches,
    methods=("None", "OLS", "HEH", "HAP", "EMP"),
    *,
    n_atoms: int = 676,
    n_steps: int = 21,
    n_iter: int = 4097,
    batch_size: int = 4096,
    eta=0.02,
    eta_homeo=0.01,
    alpha_homeo=0.05,
    C=3.0,
    alpha_mp=0.95,
    beta1=0.99,
    beta2=0.99,
    nb_quant: int = 128,
    optimizer: str = "adam",
    init="1/f",
    record_every: int = 32,
    record_size: int = 1024,
    block_size: int = 1024,
    checkpoint_dir=None,
    show_progress: bool | None = None,
) -> LearnResult:
    """Learn one dictionary per (method, seed) pair, all in one vmapped computation.

    Args:
      keys: ``(S,)`` PRNG keys (one per seed), or a single key.
      patches: ``(n, M)`` training patches (e.g. from :func:`vision_jax.data.extract_patches`).
      methods: homeostasis rules (see :data:`vision_jax.sparse.METHODS`).
      n_atoms, n_steps: dictionary size N and pursuit steps N0.
      n_iter: learning iterations (rounded up to a multiple of ``record_every``).
      batch_size: patches per iteration.
      eta, eta_homeo, alpha_homeo, C, alpha_mp, beta1, beta2, nb_quant: as in the paper's code.
      optimizer: ``"adam"`` (default) or ``"sgd"``.
      init: ``"1/f"``, ``"data"`` or an ``(N, M)`` array.
      record_every, record_size: monitoring period (iterations) and number of patches.
      checkpoint_dir: save every chunk there and resume from it.

    Returns:
      :class:`LearnResult` whose leaves have leading axes ``(len(methods), S)``; the history has
      ``(len(methods), S, n_records)``.
    """
    patches = _check_common(patches, n_atoms, n_steps, n_iter, batch_size, eta, eta_homeo, alpha_homeo, C, nb_quant,
                            record_every, record_size, optimizer)
    if isinstance(methods, str):
        methods = (methods,)
    idx = [method_index(m) for m in methods]
    keys = check_keys("keys", keys)
    n_seeds = keys.shape[0]
    dtype = patches.dtype
    k_init, k_run = (jax.vmap(lambda k, i=i: jax.random.fold_in(k, i))(keys) for i in range(2))
    dictionaries = jnp.stack([init_dictionary(k, np.asarray(patches), n_atoms, init) for k in k_init])
    # The monitoring set is the same for every run (evenly spaced patches), so records compare.
    record_patches = patches[np.linspace(0, patches.shape[0] - 1, min(record_size, patches.shape[0])).astype(int)]

    flat_method = jnp.repeat(jnp.asarray(idx, jnp.int32), n_seeds)
    config = jax.vmap(lambda m: learn_config(m, eta=eta, eta_homeo=eta_homeo, alpha_homeo=alpha_homeo, C=C, alpha_mp=alpha_mp,
                                             beta1=beta1, beta2=beta2, dtype=dtype))(flat_method)
    seed_of_run = np.tile(np.arange(n_seeds), len(idx))  # runs are method-major: (method, seed)
    flat_keys, flat_dicts = k_run[seed_of_run], dictionaries[seed_of_run]
    state = jax.vmap(lambda k, d, c: init_learning(k, d, c, nb_quant=nb_quant, optimizer=optimizer))(flat_keys, flat_dicts, config)
    single_method = idx[0] if len(set(idx)) == 1 else None

    # HEH runs and the others as separate compiled programs, so that only HEH runs pay for HEH's
    # quantile lookup (a mixed vmapped batch would compute both selection rules for every run).
    is_heh = np.repeat(np.asarray(idx) == HEH, n_seeds)
    groups = [g for g in (np.flatnonzero(is_heh), np.flatnonzero(~is_heh)) if g.size]
    chunks = [_vmapped_chunk(record_every, n_steps, batch_size, optimizer, block_size,
                             single_method if single_method is not None else (HEH if is_heh[g[0]] else None),
                             g.size == 1, None if is_heh[g[0]] else False)
              for g in groups]
    order = np.argsort(np.concatenate(groups))

    def run_one_chunk(s, _index):
        if len(groups) == 1:
            return chunks[0](s, config, patches, record_patches)
        outs = [fn(jax.tree.map(lambda x, g=g: x[g], s), jax.tree.map(lambda x, g=g: x[g], config), patches, record_patches)
                for fn, g in zip(chunks, groups)]
        return jax.tree.map(lambda *parts: jnp.concatenate(parts)[order], *outs)

    from vision_jax.checkpoint import run_chunks

    n_chunks = -(-n_iter // record_every)
    fingerprint = {"methods": list(methods), "n_seeds": n_seeds, "n_atoms": n_atoms, "n_steps": n_steps,
                   "n_iter": n_iter, "batch_size": batch_size, "eta": eta, "eta_homeo": eta_homeo,
                   "alpha_homeo": alpha_homeo, "C": C, "record_every": record_every, "optimizer": optimizer}
    state, history = run_chunks(run_one_chunk, state, n_chunks=n_chunks, directory=checkpoint_dir,
                                fingerprint=fingerprint, desc="learning", show_progress=show_progress)
    shape = (len(idx), n_seeds)

    def split(x):
        x = jnp.asarray(x)
        return x.reshape(shape + x.shape[1:])

    hist = jax.tree.map(lambda x: jnp.swapaxes(jnp.asarray(x), 0, 1).reshape(shape + (x.shape[0],) + x.shape[2:]), history)
    return LearnResult(split(state.dictionary), jax.tree.map(split, state.homeo), hist)


def learn_dictionary(key, patches, *, homeostasis="HAP", **kwargs) -> LearnResult:
    """Learn one dictionary (see :func:`learn_dictionaries` for the arguments).

    Returns:
      :class:`LearnResult` with the final ``(N, M)`` dictionary, the homeostasis state and the
      history (leaves ``(n_records, ...)``). The same key gives the same result.
    """
    result = learn_dictionaries(check_key("key", key)[None], patches, (homeostasis,), **kwargs)
    return jax.tree.map(lambda x: x[0, 0], result)
