"""Plain numpy references for the matching-pursuit benchmark (float32, vectorised over the batch)."""
import numpy as np


def mp_numpy(x, d, n_steps, gain=None):
    """Vectorised ReLU matching pursuit with gains, as fast as numpy allows: codes (K, N)."""
    G = d @ d.T
    c = x @ d.T
    codes = np.zeros_like(c)
    rows = np.arange(x.shape[0])
    gain = np.ones(d.shape[0], x.dtype) if gain is None else gain
    for _ in range(n_steps):
        i = np.argmax(np.maximum(c, 0) * gain, axis=1)
        delta = c[rows, i]
        codes[rows, i] += delta
        c -= delta[:, None] * G[i]
    return codes


def mp_heh_per_sample(x, d, n_steps, p_cum, C=3.0, alpha=0.95):
    """HEH matching pursuit written sample by sample, as the reference code runs it."""
    G = d @ d.T
    codes = np.zeros((x.shape[0], d.shape[0]), x.dtype)
    q = p_cum.shape[1]
    atoms = np.arange(d.shape[0])
    for k in range(x.shape[0]):
        rho = d @ x[k]
        for _ in range(n_steps):
            r = 1 - np.exp(-np.maximum(rho, 0) / C)
            pos = r * (q - 1)
            lo = np.clip(np.floor(pos).astype(int), 0, q - 2)
            frac = pos - lo
            score = p_cum[atoms, lo] * (1 - frac) + p_cum[atoms, lo + 1] * frac
            i = int(np.argmax(score))
            delta = alpha * rho[i]
            codes[k, i] += delta
            rho -= delta * G[i]
    return codes
