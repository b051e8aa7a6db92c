"""Eigendistortions: the image directions a model is most and least sensitive to.

For a model ``f`` at image ``x`` with Jacobian ``J``, the Fisher matrix under additive white
Gaussian output noise is ``F = J^T J``. Its top and bottom eigenvectors are the maximum and
minimum eigendistortions. One product ``F v`` costs one forward-mode and one reverse-mode pass
(``jax.linearize`` + its transpose); ``k`` vectors go through ``vmap`` together. Each method
runs as one compiled program per model, image shape and setting, cached across calls.

Methods:
  - ``"power"``: block power iteration with QR, top (shift 0) and bottom (shift ``lambda_max``),
    with a *relative* tolerance on the eigenvalues and a warning when ``max_iter`` ends a run
    unconverged (the bottom of ``F`` converges slowly when many eigenvalues sit near 0);
  - ``"lanczos"``: Lanczos over ``max_iter`` steps with partial reorthogonalisation (Simon's
    estimate of the loss of orthogonality; the basis is reorthogonalised only when it exceeds
    sqrt(eps)), both ends from the same Krylov space (far fewer products than power for the
    bottom);
  - ``"exact"``: the full Jacobian and ``eigh(J^T J)`` (small images only);
  - ``"randomized_svd"``: top ``k`` only (as in plenoptic): a randomized range finder with
    ``k + 10`` vectors and ``max_iter`` power (subspace) iterations, then the Rayleigh-Ritz
    eigenpairs; the bottom of ``J^T J`` is out of its reach.
"""
from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vision_jax._checks import check_array, check_choice, check_int, check_positive

__all__ = ["EigenResult", "fisher_product", "eigendistortion"]


class EigenResult(NamedTuple):
    eigenvalues: jax.Array  # (2k,): k largest (descending) then k smallest (descending)
    eigendistortions: jax.Array  # (2k, H, W, C) unit-norm
    n_iter: tuple  # iterations used (top, bottom)
    converged: tuple  # (top, bottom)


def fisher_product(model_fn: Callable, image: jax.Array) -> Callable:
    """``v -> J^T J v`` at ``image`` ``(H, W, C)`` for ``model_fn`` on ``(1, H, W, C)`` batches.

    ``v`` and the result are flat ``(H * W * C,)`` vectors; one product is one forward-mode and
    one reverse-mode pass through the model.
    """
    shape = image.shape

    def f(x):
        return model_fn(x.reshape((1,) + shape)).ravel()

    flat = image.ravel()
    _, jvp = jax.linearize(f, flat)
    vjp = jax.linear_transpose(jvp, flat)
    return lambda v: vjp(jvp(v))[0]


def _power(fv, n, k, key, shift, max_iter, tol, dtype):
    v0, _ = jnp.linalg.qr(jax.random.normal(key, (n, k), dtype))
    mat = jax.vmap(fv, in_axes=1, out_axes=1)

    def cond(c):
        _, _, i, change = c
        return (i < max_iter) & (change > tol)

    def body(c):
        v, lam, i, _ = c
        w = mat(v) - shift * v
        v, _ = jnp.linalg.qr(w)
        new = jnp.sum(v * mat(v), axis=0)
        change = jnp.linalg.norm(new - lam) / jnp.maximum(jnp.linalg.norm(new), jnp.finfo(dtype).tiny)
        return v, new, i + 1, change

    lam0 = jnp.sum(v0 * mat(v0), axis=0)
    v, lam, i, change = lax.while_loop(cond, body, (v0, lam0, jnp.asarray(0), jnp.asarray(jnp.inf, dtype)))
    return lam, v, i, change <= tol


def _lanczos(fv, n, m, key, dtype, n_vec):
    """m Lanczos steps with partial reorthogonalisation; Ritz values, residuals and ``n_vec`` Ritz vectors.

    The loss of orthogonality ``omega_k = q_{j+1}.q_k`` is tracked by Simon's recurrence (cheap,
    O(m) per step); when it exceeds sqrt(eps) the new vector and the next one are
    orthogonalised against the whole basis (twice, classical Gram-Schmidt), which keeps the basis
    orthogonal to sqrt(eps) at a fraction of the cost of reorthogonalising every step.
    ``n_vec`` is a pair (bottom, top) of how many Ritz vectors to form at each end.
    """
    eps = jnp.finfo(dtype).eps
    tiny = jnp.finfo(dtype).tiny
    q0, r0 = jax.random.normal(key, (2, n), dtype)  # the start, and the seed of restarts
    q0 = q0 / jnp.linalg.norm(q0)
    Q = jnp.zeros((m + 1, n), dtype).at[0].set(q0)
    rows = jnp.arange(m + 1)

    def body(j, c):
        Q, alpha, beta, w_cur, w_old, force, n_re, anorm = c
        q = Q[j]
        b_prev = jnp.where(j > 0, beta[jnp.maximum(j - 1, 0)], 0)
        w = fv(q) - b_prev * Q[jnp.maximum(j - 1, 0)]
        a = jnp.dot(w, q)
        w = w - a * q
        b = jnp.linalg.norm(w)
        alpha = alpha.at[j].set(a)
        anorm = jnp.maximum(anorm, jnp.abs(a) + b + b_prev)
        # Simon's recurrence for omega_{j+1,k}, k < j (alpha, beta padded by one zero).
        bb = jnp.concatenate([beta, jnp.zeros((1,), dtype)])
        aa = jnp.concatenate([alpha, jnp.zeros((1,), dtype)])
        up = jnp.concatenate([w_cur[1:], jnp.zeros((1,), dtype)])
        down = jnp.concatenate([jnp.zeros((1,), dtype), w_cur[:-1]])
        bdown = jnp.concatenate([jnp.zeros((1,), dtype), bb[:-1]])
        safe_b = jnp.maximum(b, tiny)
        w_new = (bb * up + (aa - a) * w_cur + bdown * down - b_prev * w_old) / safe_b
        w_new = w_new + jnp.sign(w_new) * eps * anorm / safe_b
        w_new = jnp.where(rows < j, w_new, 0.0)
        w_new = jnp.where(rows == j, eps * anorm / safe_b, w_new)
        breakdown = b <= 100 * eps * anorm
        need = force | breakdown | (jnp.max(jnp.abs(w_new)) > jnp.sqrt(eps))

        def reorth():  # rows of Q past j are still zero: no mask needed
            u = jnp.where(breakdown, jnp.roll(r0, j), w)  # a shifted random vector: a new direction
            u = u - (Q @ u) @ Q
            return u - (Q @ u) @ Q

        w = lax.cond(need, reorth, lambda: w)
        b = jnp.linalg.norm(w)
        w_new = jnp.where(need & (rows <= j), eps, w_new).at[j + 1].set(1.0)
        Q = Q.at[j + 1].set(w / b)
        beta = beta.at[j].set(jnp.where(breakdown, 0.0, b))
        return Q, alpha, beta, w_new, w_cur, need & ~force & ~breakdown, n_re + need.astype(jnp.int32), anorm

    w0 = jnp.zeros((m + 1,), dtype).at[0].set(1.0)
    init = (Q, jnp.zeros((m,), dtype), jnp.zeros((m,), dtype), w0, jnp.zeros((m + 1,), dtype), jnp.asarray(False),
            jnp.asarray(0, jnp.int32), jnp.asarray(0.0, dtype))
    Q, alpha, beta, *_, n_re, _ = lax.fori_loop(0, m, body, init)
    T = jnp.diag(alpha) + jnp.diag(beta[:-1], 1) + jnp.diag(beta[:-1], -1)
    theta, S = jnp.linalg.eigh(T)
    residual = jnp.abs(beta[-1] * S[-1])  # ||F y - theta y|| for each Ritz pair
    idx = jnp.concatenate([jnp.arange(n_vec[0]), jnp.arange(m - n_vec[1], m)])
    return theta, Q[:m].T @ S[:, idx], residual, n_re


def _randomized(fv, n, k, key, n_power, dtype):
    mat = jax.vmap(fv, in_axes=1, out_axes=1)
    q, _ = jnp.linalg.qr(mat(jax.random.normal(key, (n, min(k + 10, n)), dtype)))

    def body(_, q):
        return jnp.linalg.qr(mat(q))[0]

    q = lax.fori_loop(0, n_power, body, q)
    fq = mat(q)
    theta, s = jnp.linalg.eigh(q.T @ fq)
    vecs = q @ s
    residual = jnp.linalg.norm(fq @ s - vecs * theta[None], axis=0)
    return theta[::-1][:k], vecs[:, ::-1][:, :k], residual[::-1][:k]


def eigendistortion(model_fn: Callable, image, *, method: str = "power", k: int = 1, max_iter: int = 1000, tol=1e-7,
                    key=None) -> EigenResult:
    """Top-``k`` and bottom-``k`` eigendistortions of ``model_fn`` at ``image``.

    Args:
      model_fn: pure function of an NHWC batch ``(1, H, W, C)``.
      image: ``(H, W, C)`` (or ``(1, H, W, C)``); vmap this function for a batch of images.
      method: ``"power"``, ``"lanczos"``, ``"exact"`` or ``"randomized_svd"`` (top ``k`` only:
        the result then holds ``k`` eigenpairs, not ``2 k``).
      k: eigenvectors at each end.
      max_iter: power iterations per end, Lanczos steps, or randomized subspace iterations.
      tol: relative tolerance (power: change of the eigenvalues; lanczos: Ritz residual
        relative to the largest eigenvalue).
      key: PRNG key of the starting vectors (default ``jax.random.key(0)``).
    """
    image = check_array("image", image, ndim=(3, 4))
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(f"image: expected one image (vmap for a batch), got shape {tuple(image.shape)}")
        image = image[0]
    check_choice("method", method, ("power", "lanczos", "exact", "randomized_svd"))
    k = check_int("k", k, min_value=1)
    max_iter = check_int("max_iter", max_iter, min_value=1)
    check_positive("tol", tol)
    key = jax.random.key(0) if key is None else key
    shape, dtype = image.shape, image.dtype
    n = int(np.prod(shape))
    if 2 * k > n:
        raise ValueError(f"k: expected at most half the {n} pixels, got {k}")
    if method == "exact":
        out = jax.eval_shape(model_fn, jax.ShapeDtypeStruct((1,) + shape, dtype))
        if n * int(np.prod(out.shape)) > 5e7:
            warnings.warn(f"exact: the Jacobian has {n * int(np.prod(out.shape)):.2g} entries; use method='lanczos' "
                          "for large images", stacklevel=2)
    m = min(max_iter, n) if method == "lanczos" else max_iter
    run = _compiled(model_fn, method, shape, jnp.dtype(dtype).name, k, m, float(tol))
    lam, vecs, n_iter, converged, finite = run(image, key)
    n_iter, converged = jax.device_get((n_iter, converged))
    if not bool(finite):
        raise ValueError("model_fn: returned non-finite values at the image")
    n_iter = tuple(int(i) for i in np.atleast_1d(n_iter))
    converged = tuple(bool(c) for c in np.atleast_1d(converged))
    if method == "randomized_svd":
        if not converged[0]:
            warnings.warn(f"eigendistortion: the top eigenvalue(s) did not converge to relative tolerance {tol} "
                          f"in {max_iter} iterations (randomized_svd); raise max_iter", stacklevel=2)
        return EigenResult(lam, vecs, (max_iter, 0), (converged[0], False))
    for end, ok, it in zip(("top", "bottom"), converged, n_iter):
        if not ok:
            warnings.warn(f"eigendistortion: the {end} eigenvalue(s) did not converge to relative tolerance {tol} "
                          f"in {it} iterations ({method}); raise max_iter or use method='exact' on small images", stacklevel=2)
    return EigenResult(lam, vecs, n_iter, converged)


@lru_cache(maxsize=32)
def _compiled(model_fn, method, shape, dtype_name, k, m, tol):
    """One jitted ``(image, key) -> (eigenvalues, vectors, n_iter, converged)`` per model and setting.

    The linearisation happens inside the compiled function, so the residuals of the model are
    arguments, not constants folded into the program, and a new image reuses the compilation.
    """
    dtype = jnp.dtype(dtype_name)
    n = int(np.prod(shape))

    def unit(v):  # columns to unit norm, as (count, *shape)
        v = v / jnp.linalg.norm(v, axis=0, keepdims=True)
        return v.T.reshape((v.shape[1],) + shape)

    def run(image, key):
        finite = jnp.all(jnp.isfinite(model_fn(image[None])))
        return solve(image, key) + (finite,)

    def solve(image, key):
        if method == "exact":
            J = jax.jacfwd(lambda x: model_fn(x.reshape((1,) + shape)).ravel())(image.ravel())
            lam, vecs = jnp.linalg.eigh(J.T @ J)
            idx = jnp.concatenate([jnp.arange(n - 1, n - 1 - k, -1), jnp.arange(k - 1, -1, -1)])
            return lam[idx], unit(vecs[:, idx]), jnp.zeros(2, jnp.int32), jnp.ones(2, bool)
        fv = fisher_product(model_fn, image)
        k_top, k_bot = jax.random.split(key)
        if method == "randomized_svd":
            lam, vecs, residual = _randomized(fv, n, k, k_top, m, dtype)
            ok = jnp.all(residual <= tol * jnp.maximum(lam[0], jnp.finfo(dtype).tiny))
            return lam, unit(vecs), jnp.asarray([m, 0]), jnp.stack([ok, False])
        if method == "power":
            lam_top, v_top, it_top, ok_top = _power(fv, n, k, k_top, jnp.asarray(0, dtype), m, tol, dtype)
            lam_bot, v_bot, it_bot, ok_bot = _power(fv, n, k, k_bot, jnp.max(lam_top), m, tol, dtype)
            order_t, order_b = jnp.argsort(-lam_top), jnp.argsort(-lam_bot)
            lam = jnp.concatenate([lam_top[order_t], lam_bot[order_b]])
            vecs = jnp.concatenate([v_top[:, order_t], v_bot[:, order_b]], axis=1)
            return lam, unit(vecs), jnp.stack([it_top, it_bot]), jnp.stack([ok_top, ok_bot])
        theta, ritz, residual, _ = _lanczos(fv, n, m, k_top, dtype, (k, k))
        # ritz holds the k smallest (ascending) then the k largest (ascending)
        lam = jnp.concatenate([theta[::-1][:k], theta[:k][::-1]])
        vecs = jnp.concatenate([ritz[:, ::-1][:, :k], ritz[:, :k][:, ::-1]], axis=1)
        res = jnp.concatenate([residual[::-1][:k], residual[:k][::-1]]) / jnp.maximum(theta[-1], jnp.finfo(dtype).tiny)
        return lam, unit(vecs), jnp.asarray([m, m]), jnp.stack([jnp.all(res[:k] <= tol), jnp.all(res[k:] <= tol)])

    return jax.jit(run)
