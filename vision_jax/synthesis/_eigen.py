"""Eigendistortions: the image directions a model is most and least sensitive to.

For a model ``f`` at image ``x`` with Jacobian ``J``, the Fisher matrix under additive white
Gaussian output noise is ``F = J^T J``. Its top and bottom eigenvectors are the maximum and
minimum eigendistortions. One product ``F v`` costs one forward-mode and one reverse-mode pass
(``jax.linearize`` + its transpose); ``k`` vectors go through ``vmap`` together.

Methods:
  - ``"power"``: block power iteration with QR, top (shift 0) and bottom (shift ``lambda_max``),
    with a *relative* tolerance on the eigenvalues and a warning when ``max_iter`` ends a run
    unconverged (the bottom of ``F`` converges slowly when many eigenvalues sit near 0);
  - ``"lanczos"``: Lanczos with full reorthogonalisation over ``max_iter`` steps, both ends from
    the same Krylov space (far fewer products than power for the bottom);
  - ``"exact"``: the full Jacobian and ``eigh(J^T J)`` (small images only);
  - ``"randomized_svd"``: top ``k`` only (as in plenoptic): a randomized range finder with
    ``k + 10`` vectors and ``max_iter`` power (subspace) iterations, then the Rayleigh-Ritz
    eigenpairs; the bottom of ``J^T J`` is out of its reach.
"""
from __future__ import annotations

import warnings
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


def _lanczos(fv, n, m, key, dtype):
    """m Lanczos steps with full reorthogonalisation; returns Ritz values and vectors."""
    q0 = jax.random.normal(key, (n,), dtype)
    q0 = q0 / jnp.linalg.norm(q0)
    Q = jnp.zeros((m + 1, n), dtype).at[0].set(q0)

    def body(j, c):
        Q, alpha, beta = c
        w = fv(Q[j])
        a = jnp.dot(w, Q[j])
        w = w - a * Q[j] - jnp.where(j > 0, beta[j - 1], 0) * Q[jnp.maximum(j - 1, 0)]
        mask = (jnp.arange(m + 1) <= j).astype(dtype)

        def orthogonalise(u):  # against the basis so far; (c @ Q), not Q.T @ c, avoids a transposed copy
            return u - (mask * (Q @ u)) @ Q

        w = orthogonalise(w)
        b = jnp.linalg.norm(w)
        # An invariant subspace is exhausted (e.g. F has low rank): restart from a new random
        # direction orthogonal to the basis, with a zero coupling (T becomes block diagonal).
        scale = jnp.maximum(jnp.max(jnp.abs(alpha)), jnp.abs(a))
        breakdown = b <= 100 * jnp.finfo(dtype).eps * jnp.maximum(scale, jnp.finfo(dtype).tiny)

        def restart():
            r = orthogonalise(jax.random.normal(jax.random.fold_in(key, j), (n,), dtype))
            return r / jnp.linalg.norm(r)

        q_next = lax.cond(breakdown, restart, lambda: w / b)
        Q = Q.at[j + 1].set(q_next)
        return Q, alpha.at[j].set(a), beta.at[j].set(jnp.where(breakdown, 0, b))

    Q, alpha, beta = lax.fori_loop(0, m, body, (Q, jnp.zeros((m,), dtype), jnp.zeros((m,), dtype)))
    T = jnp.diag(alpha) + jnp.diag(beta[:-1], 1) + jnp.diag(beta[:-1], -1)
    theta, S = jnp.linalg.eigh(T)
    residual = jnp.abs(beta[-1] * S[-1])  # ||F y - theta y|| for each Ritz pair
    return theta, Q[:m].T @ S, residual


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
    out = model_fn(image[None])
    if not bool(jnp.all(jnp.isfinite(out))):
        raise ValueError("model_fn: returned non-finite values at the image")

    flat = image.ravel()

    def f(x):
        return model_fn(x.reshape((1,) + shape)).ravel()

    if method == "exact":
        if n * out.size > 5e7:
            warnings.warn(f"exact: the Jacobian has {n * out.size:.2g} entries; use method='lanczos' for large images", stacklevel=2)
        J = jax.jacfwd(f)(flat)
        lam, vecs = jnp.linalg.eigh(J.T @ J)
        idx = jnp.concatenate([jnp.arange(n - 1, n - 1 - k, -1), jnp.arange(k - 1, -1, -1)])
        return EigenResult(lam[idx], vecs[:, idx].T.reshape((2 * k,) + shape), (0, 0), (True, True))

    fv = fisher_product(model_fn, image)
    k_top, k_bot = jax.random.split(key)
    if method == "randomized_svd":
        lam, vecs, residual = jax.jit(lambda kk: _randomized(fv, n, k, kk, max_iter, dtype))(k_top)
        ok = bool(jnp.all(residual <= tol * jnp.maximum(lam[0], jnp.finfo(dtype).tiny)))
        if not ok:
            warnings.warn(f"eigendistortion: the top eigenvalue(s) did not converge to relative tolerance {tol} "
                          f"in {max_iter} iterations (randomized_svd); raise max_iter", stacklevel=2)
        vecs = vecs / jnp.linalg.norm(vecs, axis=0, keepdims=True)
        return EigenResult(lam, vecs.T.reshape((k,) + shape), (max_iter, 0), (ok, False))
    if method == "power":
        run = jax.jit(lambda kk, shift: _power(fv, n, k, kk, shift, max_iter, tol, dtype))
        lam_top, v_top, it_top, ok_top = run(k_top, jnp.asarray(0, dtype))
        shift = jnp.max(lam_top)
        lam_bot, v_bot, it_bot, ok_bot = run(k_bot, shift)  # Rayleigh quotients of F itself
        order_t, order_b = jnp.argsort(-lam_top), jnp.argsort(-lam_bot)
        lam = jnp.concatenate([lam_top[order_t], lam_bot[order_b]])
        vecs = jnp.concatenate([v_top[:, order_t], v_bot[:, order_b]], axis=1)
        n_iter, converged = (int(it_top), int(it_bot)), (bool(ok_top), bool(ok_bot))
    else:
        m = min(max_iter, n)
        theta, ritz, residual = jax.jit(lambda kk: _lanczos(fv, n, m, kk, dtype))(k_top)
        idx = jnp.concatenate([jnp.arange(m - 1, m - 1 - k, -1), jnp.arange(k - 1, -1, -1)])
        lam, vecs = theta[idx], ritz[:, idx]
        res = residual[idx] / jnp.maximum(theta[-1], jnp.finfo(dtype).tiny)
        converged = (bool(jnp.all(res[:k] <= tol)), bool(jnp.all(res[k:] <= tol)))
        n_iter = (m, m)
    for end, ok, it in zip(("top", "bottom"), converged, n_iter):
        if not ok:
            warnings.warn(f"eigendistortion: the {end} eigenvalue(s) did not converge to relative tolerance {tol} "
                          f"in {it} iterations ({method}); raise max_iter or use method='exact' on small images", stacklevel=2)
    vecs = vecs / jnp.linalg.norm(vecs, axis=0, keepdims=True)
    return EigenResult(lam, vecs.T.reshape((2 * k,) + shape), n_iter, converged)
