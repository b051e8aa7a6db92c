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


class NumpyHAPLearner:
    """One learning iteration of the reference's pipeline in numpy (float32): gain-MP coding, the
    P_cum histograms of every atom (``np.histogram`` per atom, as the reference does), HAP gains,
    the Hebbian gradient through Adam (betas 0.99, eps 1e-10) and unit-norm rows."""

    def __init__(self, dictionary, *, n_steps=21, eta=0.02, eta_homeo=0.01, C=3.0, nb_quant=128, seed=0):
        self.D = np.array(dictionary, np.float32)
        N = self.D.shape[0]
        self.n_steps, self.eta, self.eta_homeo, self.C, self.nb_quant = n_steps, eta, eta_homeo, C, nb_quant
        self.gain = np.ones(N, np.float32)
        self.p = None
        self.p_cum = np.tile(np.linspace(0, 1, nb_quant, dtype=np.float32), (N, 1))
        self.mu, self.nu, self.t = np.zeros_like(self.D), np.zeros_like(self.D), 0
        self.rng = np.random.default_rng(seed)

    def step(self, patches):
        K = 4096
        x = patches[self.rng.integers(0, patches.shape[0], K)]
        codes = mp_numpy(x, self.D, self.n_steps, self.gain)
        r = 1 - np.exp(-np.maximum(codes, 0) / self.C)
        bins = np.linspace(0, 1, self.nb_quant)
        hist = np.stack([np.histogram(r[:, i], bins=bins)[0] for i in range(codes.shape[1])]) / K
        p_cum = np.concatenate([np.zeros((codes.shape[1], 1)), np.cumsum(hist, axis=1)], axis=1)
        e = self.eta_homeo
        self.p_cum = (1 - e) * self.p_cum + e * p_cum
        p_batch = np.mean(codes != 0, axis=0)
        self.p = p_batch if self.p is None else (1 - e) * self.p + e * p_batch
        target = np.mean(codes > 0)
        self.gain = (np.log(np.clip(self.p, 1e-6, 1 - 1e-6)) / np.log(target)).astype(np.float32)
        grad = -(codes.T @ (x - codes @ self.D)) / K
        self.t += 1
        self.mu = 0.99 * self.mu + 0.01 * grad
        self.nu = 0.99 * self.nu + 0.01 * grad**2
        step = self.eta * (self.mu / (1 - 0.99**self.t)) / (np.sqrt(self.nu / (1 - 0.99**self.t)) + 1e-10)
        self.D = (self.D - step).astype(np.float32)
        self.D /= np.linalg.norm(self.D, axis=1, keepdims=True)
