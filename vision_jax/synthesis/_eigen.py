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
  - ``"lanczos"``: Lanczos with partial reorthogonalisation (Simon's estimate of the loss of
    orthogonality; the basis is reorthogonalised only when it exceeds sqrt(eps)), both ends from
    the same Krylov space (far fewer products than power for the bottom), stopped as soon as both
    ends meet the relative tolerance (checked every 25 steps on the tridiagonal matrix, on the
    host) or after ``max_iter`` steps;
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

from vision_jax._checks import check_array, check_callable, check_choice, check_int, check_positive

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


def _tridiagonal_ends(alpha, beta, j, n_vec, vectors):
    """Host: the ``n_vec = (bottom, top)`` extreme eigenpairs of the ``j x j`` Lanczos matrix.

    Returns ascending Ritz values ``(nb + nt,)``, the last components of their eigenvectors
    (``|beta_j s_last|`` is the Ritz residual) and, with ``vectors``, the eigenvectors padded to
    ``(m, nb + nt)``. LAPACK's tridiagonal bisection and inverse iteration: O(j) per pair.
    """
    import scipy.linalg

    alpha, beta = np.asarray(alpha, np.float64), np.asarray(beta, np.float64)
    j = int(j)
    m = alpha.shape[0]
    nb, nt = n_vec
    d, e = alpha[:j], beta[:j - 1]
    if j == 1:
        theta, S = d.copy(), np.ones((1, 1))
    else:
        lo = scipy.linalg.eigh_tridiagonal(d, e, select="i", select_range=(0, min(nb, j) - 1))
        hi = scipy.linalg.eigh_tridiagonal(d, e, select="i", select_range=(max(j - nt, 0), j - 1))
        theta = np.concatenate([lo[0], hi[0]])
        S = np.concatenate([lo[1], hi[1]], axis=1)
    if theta.shape[0] < nb + nt:  # fewer steps than pairs asked for: repeat the last pair
        pad = nb + nt - theta.shape[0]
        theta = np.concatenate([theta, np.repeat(theta[-1:], pad)])
        S = np.concatenate([S, np.repeat(S[:, -1:], pad, axis=1)], axis=1)
    last = S[-1]
    full = np.zeros((m, nb + nt))
    full[:j] = S
    return theta, last, full if vectors else np.zeros((0, nb + nt))


def _ends(alpha, beta, j, n_vec, vectors):
    """:func:`_tridiagonal_ends` as a callback of the compiled program."""
    k2 = n_vec[0] + n_vec[1]
    dtype = alpha.dtype
    shapes = (jax.ShapeDtypeStruct((k2,), dtype), jax.ShapeDtypeStruct((k2,), dtype),
              jax.ShapeDtypeStruct((alpha.shape[0] if vectors else 0, k2), dtype))

    def host(a, b, jj):
        return tuple(np.asarray(x, dtype) for x in _tridiagonal_ends(a, b, jj, n_vec, vectors))

    return jax.pure_callback(host, shapes, alpha, beta, j, vmap_method="sequential")


def _lanczos(fv, n, m, key, dtype, n_vec, tol, check_every):
    """Up to m Lanczos steps with partial reorthogonalisation, stopped when both ends converge.

    The loss of orthogonality ``omega_k = q_{j+1}.q_k`` is tracked by Simon's recurrence (cheap,
    O(m) per step); when it exceeds sqrt(eps) the new vector and the next one are
    orthogonalised against the whole basis (twice, classical Gram-Schmidt), which keeps the basis
    orthogonal to sqrt(eps) at a fraction of the cost of reorthogonalising every step.
    Every ``check_every`` steps the extreme Ritz pairs of the tridiagonal matrix are computed
    (on the host, O(steps)); the run stops when the top pairs have residuals
    ``||F y - theta y|| <= tol * theta_max`` and the bottom pairs either such residuals or
    ``theta <= tol * theta_max``: F = J^T J is positive semi-definite, and Ritz values interlace
    the eigenvalues, so ``0 <= lambda_i <= theta_i`` and ``|theta_i - lambda_i| <= tol * lambda_max``.
    ``n_vec`` is a pair (bottom, top) of how many Ritz pairs to form at each end.

    Returns ascending Ritz values ``(nb + nt,)``, their vectors ``(n, nb + nt)``, the number of
    steps, and the convergence flags (bottom, top).
    """
    eps = jnp.finfo(dtype).eps
    tiny = jnp.finfo(dtype).tiny
    nb, nt = n_vec
    # the start, and the seed of restarts (uniform: any direction-rich vector serves, and compiles faster than normal)
    q0, r0 = jax.random.uniform(key, (2, n), dtype, -1.0, 1.0)
    q0 = q0 / jnp.linalg.norm(q0)
    n_blocks = -(-(m + 1) // _BLOCK)  # the basis in blocks of rows: reorthogonalisation costs O(j n), not O(m n)
    Q = jnp.zeros((n_blocks * _BLOCK, n), dtype).at[0].set(q0)
    rows = jnp.arange(m + 1, dtype=jnp.int32)

    def project_out(Q, u, j):
        """``u - Q^T Q u`` over the blocks holding rows ``0..j`` (classical Gram-Schmidt)."""
        def block(i, corr):
            Qb = lax.dynamic_slice_in_dim(Q, i * _BLOCK, _BLOCK)
            return corr + (Qb @ u) @ Qb

        return u - lax.fori_loop(0, j // _BLOCK + 1, block, jnp.zeros_like(u))

    def flags(theta, last, b):
        """(bottom, top) converged: relative Ritz residuals ``|b last| / theta_max <= tol`` (``b`` the
        last beta), or a bottom value ``<= tol * theta_max``."""
        scale = jnp.maximum(theta[-1], tiny)
        res = jnp.abs(b * last) / scale
        return jnp.stack([jnp.all((res[:nb] <= tol) | (theta[:nb] <= tol * scale)), jnp.all(res[nb:] <= tol)])

    def converged(alpha, beta, j):
        theta, last, _ = _ends(alpha, beta, j, n_vec, False)
        return flags(theta, last, beta[j - 1])

    def cond(c):
        j, ok = c[0], c[-1]
        return (j < m) & ~jnp.all(ok)

    def body(c):
        j, Q, alpha, beta, w_cur, w_old, force, n_re, anorm, ok = c
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
            return project_out(Q, project_out(Q, u, j), j)

        w = lax.cond(need, reorth, lambda: w)
        b = jnp.linalg.norm(w)
        w_new = jnp.where(need & (rows <= j), eps, w_new).at[j + 1].set(1.0)
        Q = Q.at[j + 1].set(w / b)
        beta = beta.at[j].set(jnp.where(breakdown, 0.0, b))
        j = j + 1
        check = (j % check_every == 0) & (j < m)
        ok = lax.cond(check, lambda: converged(alpha, beta, j), lambda: ok)
        return j, Q, alpha, beta, w_new, w_cur, need & ~force & ~breakdown, n_re + need.astype(jnp.int32), anorm, ok

    w0 = jnp.zeros((m + 1,), dtype).at[0].set(1.0)
    init = (jnp.asarray(0, jnp.int32), Q, jnp.zeros((m,), dtype), jnp.zeros((m,), dtype), w0, jnp.zeros((m + 1,), dtype),
            jnp.asarray(False), jnp.asarray(0, jnp.int32), jnp.asarray(0.0, dtype), jnp.zeros((2,), bool))
    j, Q, alpha, beta, *_ = lax.while_loop(cond, body, init)
    theta, last, S = _ends(alpha, beta, j, n_vec, True)
    # (a lucky breakdown, an invariant subspace, has beta_j = 0: every pair is exact)
    return theta, Q[:m].T @ S, j, flags(theta, last, beta[j - 1])


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
      max_iter: power iterations per end, the most Lanczos steps, or randomized subspace iterations.
      tol: relative tolerance (power: change of the eigenvalues; lanczos: Ritz residual
        relative to the largest eigenvalue, checked every 25 steps; a bottom Ritz value below
        ``tol * lambda_max`` is also converged, since ``0 <= lambda_min <= theta_min``).
      key: PRNG key of the starting vectors (default ``jax.random.key(0)``).
    """
    check_callable("model_fn", model_fn)
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


# Lanczos checks both ends for convergence every this many steps, and reorthogonalises against
# its basis in blocks of this many rows.
_CHECK_EVERY = 25
_BLOCK = 64


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
        theta, ritz, steps, ok = _lanczos(fv, n, m, k_top, dtype, (k, k), tol, _CHECK_EVERY)
        # theta, ritz: the k smallest (ascending) then the k largest (ascending)
        lam = jnp.concatenate([theta[::-1][:k], theta[:k][::-1]])
        vecs = jnp.concatenate([ritz[:, ::-1][:, :k], ritz[:, :k][:, ::-1]], axis=1)
        return lam, unit(vecs), jnp.stack([steps, steps]), ok[::-1]

    return jax.jit(run)
