// The retina cascade without spikes (vision_jax.retina._model._step with spikes off), stepped on CPU
// one frame at a time, and its reverse-mode derivative written by hand. XLA runs each fused kernel
// of a scan step separately, and at 50x50 a kernel does little work: the differentiated step is
// about 120 kernels and 12 convolutions. Here a step is a few loops over maps that stay in cache,
// and a parameter's cotangent is summed as it is produced.
//
// State: (S, H, W) maps, S = poles + 10: centre poles, undershoot low-pass, undershoot, surround,
// I_OPL, bipolar V, adaptation g_A, transient low-pass, transient, ganglion input ON and OFF.
// Scalars (17): OPL gain lambda_OPL / luminosity_range, the decays exp(-dt / tau) of the centre
// pole, undershoot, surround, adaptation and transient, w_U, w_OPL, lambda'_OPL, g_A0, lambda_A,
// w_G, v0, i0, lambda_G, g_L, refractory period. Taps: the 1-D blur weights of the centre,
// surround, adaptation and pooling stages, concatenated (n_c, n_s, n_a, n_p taps; 0: no blur).
// A blur's weights enter as the off-centre taps, the centre tap being 1 minus their sum (the
// weights are normalised): the cotangent of a centre tap is 0, and an off-centre tap's sums
// differences x[i + j] - x[i], which do not cancel as two large sums would in float32.
//
// The forward pass called for a derivative keeps the state before every 16th step; the backward
// pass recomputes the 16 steps of a stretch from it, keeping their states and intermediate maps
// (about 4 MB at 50x50 in float32, within the L3 cache), then walks the stretch backwards.
// (Keeping every state, as JAX's differentiation with remat does, writes 11 maps per frame:
// slower, most of it page faults.)
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int kScalars = 17;
constexpr int64_t kSegment = 16;  // the forward pass keeps every 16th state for the backward pass
enum Scalar { kGain, kEc, kEu, kEs, kEa, kEt, kWu, kWo, kLb, kG0, kLa, kWg, kV0, kI0, kLg, kLeak, kRefr };
enum Padding { kReflect = 0, kSymmetric = 1, kCircular = 2, kZero = 3 };

// Source index of padded position p (in [-r, n + r)) or -1 (zero padding), as numpy.pad's modes.
int source_index(int64_t p, int64_t n, int padding) {
  if (p >= 0 && p < n) return static_cast<int>(p);
  switch (padding) {
    case kReflect: {
      if (n == 1) return 0;
      const int64_t period = 2 * n - 2;
      int64_t q = ((p % period) + period) % period;
      return static_cast<int>(q < n ? q : period - q);
    }
    case kSymmetric: {
      const int64_t period = 2 * n;
      int64_t q = ((p % period) + period) % period;
      return static_cast<int>(q < n ? q : period - 1 - q);
    }
    case kCircular:
      return static_cast<int>(((p % n) + n) % n);
    default:
      return -1;
  }
}

// A 64-byte vector of T (GCC/Clang vector extension; one AVX-512 register, two AVX2 ones).
template <typename T>
struct Vec {
  typedef T type __attribute__((vector_size(64)));
  static constexpr int64_t size = 64 / sizeof(T);
  static type load(const T* p) {
    type v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  }
  static void store(T* p, type v) { std::memcpy(p, &v, sizeof(v)); }
};

// Correlations, `Vec<T>::size` outputs per register; up to four registers accumulate side by side
// (one accumulator would wait on each multiply-add's latency), and a row's last block overlaps the
// one before instead of running past the row. Summing into memory tap by tap would chain every
// tap's store to the next tap's load.
template <typename T, int B, typename Source>
inline void correlate_blocks(const int64_t* starts, const T* __restrict k, int64_t n, Source source, T* out) {
  using V = Vec<T>;
  typename V::type a[B] = {};
  for (int64_t j = 0; j < n; ++j) {
    const T kj = k[j];
    for (int b = 0; b < B; ++b) a[b] += kj * V::load(source(j) + starts[b]);
  }
  for (int b = 0; b < B; ++b) V::store(out + starts[b], a[b]);
}

// out[p] = sum_j k[j] source(j)[p] for p in [0, len).
template <typename T, typename Source>
void correlate(int64_t len, const T* __restrict k, int64_t n, Source source, T* __restrict out) {
  constexpr int64_t kBlock = Vec<T>::size;
  if (len < kBlock) {
    for (int64_t p = 0; p < len; ++p) {
      T a = T(0);
      for (int64_t j = 0; j < n; ++j) a += k[j] * source(j)[p];
      out[p] = a;
    }
    return;
  }
  for (int64_t p0 = 0; p0 < len; p0 += 4 * kBlock) {
    int64_t starts[4];
    int count = 0;
    for (; count < 4 && p0 + count * kBlock < len; ++count) starts[count] = std::min(p0 + count * kBlock, len - kBlock);
    switch (count) {
      case 4: correlate_blocks<T, 4>(starts, k, n, source, out); break;
      case 3: correlate_blocks<T, 3>(starts, k, n, source, out); break;
      case 2: correlate_blocks<T, 2>(starts, k, n, source, out); break;
      default: correlate_blocks<T, 1>(starts, k, n, source, out); break;
    }
  }
}

// out[p] = sum_j k[j] in[p + j] for p in [0, len): along a row.
template <typename T>
void correlate_row(const T* __restrict in, int64_t len, const T* __restrict k, int64_t n, T* __restrict out) {
  correlate<T>(len, k, n, [in](int64_t j) { return in + j; }, out);
}

// out[w] = sum_j k[j] rows[j][w] for w in [0, W): across rows.
template <typename T>
void correlate_rows(const T* const* rows, int64_t W, const T* __restrict k, int64_t n, T* __restrict out) {
  correlate<T>(W, k, n, [rows](int64_t j) { return rows[j]; }, out);
}

// sum_i g[i] (a[i] - b[i]) with four vector accumulators (one would wait on each multiply-add).
template <typename T>
T dot_difference(const T* __restrict g, const T* __restrict a, const T* __restrict b, int64_t len) {
  using V = Vec<T>;
  constexpr int64_t B = V::size;
  typename V::type s0 = {}, s1 = {}, s2 = {}, s3 = {};
  int64_t i = 0;
  for (; i + 4 * B <= len; i += 4 * B) {
    s0 += V::load(g + i) * (V::load(a + i) - V::load(b + i));
    s1 += V::load(g + i + B) * (V::load(a + i + B) - V::load(b + i + B));
    s2 += V::load(g + i + 2 * B) * (V::load(a + i + 2 * B) - V::load(b + i + 2 * B));
    s3 += V::load(g + i + 3 * B) * (V::load(a + i + 3 * B) - V::load(b + i + 3 * B));
  }
  for (; i + B <= len; i += B) s0 += V::load(g + i) * (V::load(a + i) - V::load(b + i));
  s0 += s1 + s2 + s3;
  T sum = T(0);
  for (int64_t l = 0; l < B; ++l) sum += s0[l];
  for (; i < len; ++i) sum += g[i] * (a[i] - b[i]);
  return sum;
}

// A separable blur of (H, W) maps by odd symmetric 1-D taps: z = (taps along H) x, y = (taps along W) z.
// The transposed blur is the same correlation over the zero-padded cotangent (the taps are symmetric).
template <typename T>
struct Blur {
  int64_t n = 0, r = 0, H = 0, W = 0;
  const T* k = nullptr;
  std::vector<int> mh, mw;                 // source row / column of each padded position, or -1
  std::vector<T> row, grow, crow, zeros;   // a padded row (W + 2r, then room to whole vectors); a zero-padded
                                           // one (W + 4r); W + 2r; W zeros
  std::vector<T> gbuf, zbuf;               // one row, zero-padded to whole vectors
  std::vector<T> prows;                    // (H + 2r, W): cotangents of the padded rows
  std::vector<const T*> ptrs;
  std::vector<typename Vec<T>::type> part;  // backward: four vector sums per tap
  std::vector<T> acc;                       // backward: the taps' sums

  void init(const T* taps, int64_t count, int64_t h, int64_t w, int padding) {
    n = count, r = (count - 1) / 2, H = h, W = w, k = taps;
    if (n == 0) return;
    mh.resize(H + 2 * r), mw.resize(W + 2 * r);
    for (int64_t p = 0; p < H + 2 * r; ++p) mh[p] = source_index(p - r, H, padding);
    for (int64_t p = 0; p < W + 2 * r; ++p) mw[p] = source_index(p - r, W, padding);
    const int64_t whole = (W + Vec<T>::size - 1) / Vec<T>::size * Vec<T>::size;
    row.assign(whole + 2 * r, T(0)), grow.assign(W + 4 * r, T(0)), crow.assign(W + 2 * r, T(0));
    gbuf.assign(whole, T(0)), zbuf.assign(whole, T(0));
    zeros.assign(W, T(0)), prows.assign((H + 2 * r) * W, T(0)), ptrs.resize(n);
    part.resize(4 * n), acc.resize(n);
  }

  void pad_row(const T* src, T* dst) const {  // dst (W + 2r) from one row src (W)
    for (int64_t p = 0; p < r; ++p) dst[p] = mw[p] < 0 ? T(0) : src[mw[p]];
    std::memcpy(dst + r, src, W * sizeof(T));
    for (int64_t p = W + r; p < W + 2 * r; ++p) dst[p] = mw[p] < 0 ? T(0) : src[mw[p]];
  }

  const T* padded_row(const T* x, int64_t p) const { return mh[p] < 0 ? zeros.data() : x + mh[p] * W; }

  // z = blur of x along H; y = blur of z along W. x, z, y: (H, W), distinct.
  void forward(const T* __restrict x, T* __restrict z, T* __restrict y) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t j = 0; j < n; ++j) ptrs[j] = padded_row(x, h + j);
      correlate_rows(ptrs.data(), W, k, n, z + h * W);
    }
    for (int64_t h = 0; h < H; ++h) {
      pad_row(z + h * W, row.data());
      correlate_row(row.data(), W, k, n, y + h * W);
    }
  }

  // Given x and z = forward's intermediate, and gy the cotangent of y: gx (written; gz is scratch)
  // and the off-centre taps' cotangents added to dk (n entries; the centre one is left alone).
  void backward(const T* __restrict x, const T* __restrict z, const T* __restrict gy, T* __restrict gz,
                T* __restrict gx, double* dk) {
    using V = Vec<T>;
    constexpr int64_t B = V::size;
    const int64_t blocks = (W + B - 1) / B;
    // along W, the taps: per tap one vector of partial sums over all rows; the rows are copied
    // into zero-padded buffers so that whole vectors cover them (the padding adds zeros)
    std::fill(part.begin(), part.end(), typename V::type{});
    for (int64_t h = 0; h < H; ++h) {
      const T* __restrict zr = z + h * W;
      pad_row(zr, row.data());
      std::memcpy(gbuf.data(), gy + h * W, W * sizeof(T));
      std::memcpy(zbuf.data(), zr, W * sizeof(T));
      for (int64_t j = 0; j < n; ++j) {
        if (j == r) continue;
        for (int64_t b = 0; b < blocks; ++b)
          part[4 * j + (b & 3)] +=
              V::load(gbuf.data() + b * B) * (V::load(row.data() + b * B + j) - V::load(zbuf.data() + b * B));
      }
      std::memcpy(grow.data() + 2 * r, gy + h * W, W * sizeof(T));  // the transpose
      correlate_row(grow.data(), W + 2 * r, k, n, crow.data());
      T* __restrict gr = gz + h * W;
      const T* __restrict c = crow.data();
      std::memcpy(gr, c + r, W * sizeof(T));
      for (int64_t p = 0; p < r; ++p) if (mw[p] >= 0) gr[mw[p]] += c[p];
      for (int64_t p = W + r; p < W + 2 * r; ++p) if (mw[p] >= 0) gr[mw[p]] += c[p];
    }
    std::fill(acc.begin(), acc.end(), T(0));
    for (int64_t j = 0; j < 4 * n; ++j)
      for (int64_t b = 0; b < B; ++b) acc[j / 4] += part[j][b];
    // along H, the taps: rows h whose shifted row h + j - r lies inside the map are one contiguous
    // dot product; the others go row by row through the padding
    for (int64_t j = 0; j < n; ++j) {
      if (j == r) continue;
      const int64_t shift = j - r;
      const int64_t h0 = std::max<int64_t>(0, -shift), h1 = std::min<int64_t>(H, H - shift);
      T sum = T(0);
      if (h1 > h0) sum += dot_difference(gz + h0 * W, x + (h0 + shift) * W, x + h0 * W, (h1 - h0) * W);
      for (int64_t h = 0; h < H; ++h) {
        if (h < h0 || h >= h1) sum += dot_difference(gz + h * W, padded_row(x, h + j), x + h * W, W);
      }
      acc[j] += sum;
    }
    for (int64_t p = 0; p < H + 2 * r; ++p) {  // along H: the transpose
      for (int64_t j = 0; j < n; ++j) {
        const int64_t q = p + j - 2 * r;
        ptrs[j] = (q >= 0 && q < H) ? gz + q * W : zeros.data();
      }
      correlate_rows(ptrs.data(), W, k, n, prows.data() + p * W);
    }
    std::memcpy(gx, prows.data() + r * W, H * W * sizeof(T));
    for (int64_t p = 0; p < H + 2 * r; ++p) {
      if ((p >= r && p < H + r) || mh[p] < 0) continue;
      T* __restrict dst = gx + mh[p] * W;
      const T* __restrict src = prows.data() + p * W;
      for (int64_t w = 0; w < W; ++w) dst[w] += src[w];
    }
    for (int64_t j = 0; j < n; ++j) dk[j] += static_cast<double>(acc[j]);
  }
};

struct Config {
  int64_t T = 0, H = 0, W = 0, poles = 1;
  bool leaky = false, undershoot = true, lag = true;
  int padding = kSymmetric;
  int64_t taps[4] = {0, 0, 0, 0};  // centre, surround, adaptation, pool
  double dt = 0.001;
  int64_t maps() const { return poles + 10; }
  int64_t n_taps() const { return taps[0] + taps[1] + taps[2] + taps[3]; }
};

// A transient, Virtual Retina's undershoot and the ganglion's: lp' = x + e (lp - x) (a low-pass),
// y = x - weight lp'.
template <typename T>
void transient(int64_t n, const T* __restrict x, const T* __restrict lp, T e, T weight, T* __restrict lp_new,
               T* __restrict y) {
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i] + e * (lp[i] - x[i]);
    lp_new[i] = v;
    y[i] = x[i] - weight * v;
  }
}

// Its derivative: given the cotangents gy of y and g_lp of lp', adds those of x to gx and of lp
// to h_lp; returns the cotangents of (weight, e).
template <typename T>
std::pair<T, T> transient_adjoint(int64_t n, const T* __restrict x, const T* __restrict lp,
                                  const T* __restrict lp_new, T e, T weight, const T* __restrict gy,
                                  const T* __restrict g_lp, T* __restrict gx, T* __restrict h_lp) {
  T a_weight = 0, a_e = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T gl = g_lp[i] - weight * gy[i];
    a_weight -= gy[i] * lp_new[i];
    gx[i] += gy[i] + (T(1) - e) * gl;
    h_lp[i] += e * gl;
    a_e += gl * (lp[i] - x[i]);
  }
  return {a_weight, a_e};
}

// Intermediate maps of one step: what its derivative needs beyond the old and new states.
template <typename T>
struct Work {
  std::vector<T> drive, cz, cin, spre, sz, sb, ar, az, aq, rect, pz;
  explicit Work(int64_t hw)
      : drive(hw), cz(hw), cin(hw), spre(hw), sz(hw), sb(hw), ar(hw), az(hw), aq(hw), rect(2 * hw), pz(2 * hw) {}
};

// Scratch maps of the derivative of a step.
template <typename T>
struct Scratch {
  std::vector<T> gtmp, gtmp2, gc, gu, gblur;
  explicit Scratch(int64_t hw) : gtmp(2 * hw), gtmp2(2 * hw), gc(hw), gu(hw), gblur(hw) {}
};

template <typename T>
struct Model {
  Config cfg;
  T s[kScalars];
  Blur<T> blur[4];
  int64_t HW, S;
  int64_t tap_offset[4];  // of each blur's taps in the concatenated taps
  // state map indices
  int64_t iULP, iU, iS, iI, iV, iGA, iTLP, iVT, iCUR;

  Model(const Config& c, const T* scalars, const T* taps) : cfg(c) {
    for (int i = 0; i < kScalars; ++i) s[i] = scalars[i];
    HW = c.H * c.W, S = c.maps();
    int64_t offset = 0;
    for (int b = 0; b < 4; ++b) {
      tap_offset[b] = offset;
      blur[b].init(taps + offset, c.taps[b], c.H, c.W, c.padding);
      offset += c.taps[b];
    }
    iULP = c.poles, iU = iULP + 1, iS = iU + 1, iI = iS + 1, iV = iI + 1, iGA = iV + 1, iTLP = iGA + 1,
    iVT = iTLP + 1, iCUR = iVT + 1;
  }

  bool has(int b) const { return cfg.taps[b] > 0; }

  // One step: state `o` -> `nw`, frame L (H, W); intermediates into w; outputs where non-null.
  void step(const T* __restrict o, T* __restrict nw, const T* __restrict L, Work<T>& w, T* rates, T* opl,
            T* bip, T* adapt, T* cur) {
    const int64_t n = HW;
    const T gain = s[kGain], ec = s[kEc], eu = s[kEu], es = s[kEs], ea = s[kEa], et = s[kEt];
    auto O = [&](int64_t m) { return o + m * n; };
    auto N = [&](int64_t m) { return nw + m * n; };
    T* __restrict d = w.drive.data();
    for (int64_t i = 0; i < n; ++i) d[i] = gain * L[i];
    const int64_t last = cfg.poles - 1;
    // 1. OPL
    if (cfg.leaky) {
      T* __restrict a = w.cin.data();
      const T* __restrict c0 = O(0);
      for (int64_t i = 0; i < n; ++i) a[i] = d[i] + ec * (c0[i] - d[i]);
      blur[0].forward(a, w.cz.data(), N(0));
    } else {
      const T* x = d;
      if (has(0)) {
        blur[0].forward(d, w.cz.data(), w.cin.data());
        x = w.cin.data();
      }
      for (int64_t p = 0; p < cfg.poles; ++p) {
        const T* __restrict cp = O(p);
        T* __restrict y = N(p);
        for (int64_t i = 0; i < n; ++i) y[i] = x[i] + ec * (cp[i] - x[i]);
        x = y;
      }
    }
    const T* c = N(last);
    if (cfg.undershoot) {
      transient(n, cfg.lag ? O(last) : c, O(iULP), eu, s[kWu], N(iULP), N(iU));
    } else {
      std::memcpy(N(iULP), O(iULP), n * sizeof(T));
      std::memcpy(N(iU), c, n * sizeof(T));
    }
    const T* xs = cfg.lag ? (cfg.undershoot ? O(iU) : O(last)) : N(iU);
    {
      const T* __restrict so = O(iS);
      T* __restrict sn = N(iS);
      if (cfg.leaky) {
        T* __restrict a = w.spre.data();
        for (int64_t i = 0; i < n; ++i) a[i] = xs[i] + es * (so[i] - xs[i]);
        blur[1].forward(a, w.sz.data(), sn);
      } else {
        const T* b = xs;
        if (has(1)) {
          blur[1].forward(xs, w.sz.data(), w.sb.data());
          b = w.sb.data();
        }
        for (int64_t i = 0; i < n; ++i) sn[i] = b[i] + es * (so[i] - b[i]);
      }
      const T* __restrict u = N(iU);
      T* __restrict io = N(iI);
      const T wo = s[kWo];
      for (int64_t i = 0; i < n; ++i) io[i] = u[i] - wo * sn[i];
    }
    // 2. contrast gain control
    {
      const T* __restrict xb = cfg.lag ? O(iI) : N(iI);
      const T* __restrict vo = O(iV);
      const T* __restrict gao = O(iGA);
      T* __restrict vn = N(iV);
      const T lb = s[kLb], g0 = s[kG0], mdt = static_cast<T>(-cfg.dt);
      for (int64_t i = 0; i < n; ++i) {
        const T g = g0 + gao[i];
        const T vinf = lb * xb[i] / g;
        vn[i] = (vo[i] - vinf) * std::exp(mdt * g) + vinf;
      }
      const T* xa = cfg.lag ? vo : vn;  // may be vn: not restrict
      T* __restrict ar = w.ar.data();
      const T la = s[kLa];
      for (int64_t i = 0; i < n; ++i) ar[i] = la * xa[i] * xa[i];
      const T* q = ar;
      if (has(2) && la != T(0)) {  // with lambda_A = 0 the blur's input is 0
        blur[2].forward(ar, w.az.data(), w.aq.data());
        q = w.aq.data();
      }
      T* __restrict gan = N(iGA);
      for (int64_t i = 0; i < n; ++i) gan[i] = q[i] + ea * (gao[i] - q[i]);
    }
    // 3. ganglion input
    {
      T* __restrict vt = N(iVT);
      transient(n, cfg.lag ? O(iV) : N(iV), O(iTLP), et, s[kWg], N(iTLP), vt);
      const T* xn = cfg.lag ? O(iVT) : vt;  // may be vt: not restrict
      const T v0 = s[kV0], i0 = s[kI0], lg = s[kLg];
      T* __restrict rect = has(3) ? w.rect.data() : N(iCUR);
      for (int64_t ch = 0; ch < 2; ++ch) {
        const T sign = ch == 0 ? T(1) : T(-1);
        T* __restrict out = rect + ch * n;
        for (int64_t i = 0; i < n; ++i) {
          const T z = sign * xn[i] - v0;
          const T below = i0 * i0 / (i0 - lg * std::min(z, T(0)));
          out[i] = z < T(0) ? below : i0 + lg * z;
        }
        if (has(3)) blur[3].forward(out, w.pz.data() + ch * n, N(iCUR) + ch * n);
      }
    }
    // 4. rates
    const T* __restrict xi = cfg.lag ? O(iCUR) : N(iCUR);
    if (rates) {
      const T leak = s[kLeak], refr = s[kRefr], thr = leak * static_cast<T>(1 + 1e-6);
      for (int64_t i = 0; i < 2 * n; ++i) {
        const T x = std::max(xi[i], thr);
        const T isi = refr + std::log(x / (x - leak)) / leak;
        rates[i] = xi[i] > thr ? T(1) / isi : T(0);
      }
    }
    if (opl) std::memcpy(opl, N(iI), n * sizeof(T));
    if (bip) std::memcpy(bip, N(iV), n * sizeof(T));
    if (adapt) std::memcpy(adapt, N(iGA), n * sizeof(T));
    if (cur) std::memcpy(cur, N(iCUR), 2 * n * sizeof(T));
  }

  // The derivative of step(o) -> nw. `g` (S maps) holds the cotangent of the new state with the
  // outputs' cotangents added, and is used as scratch; `h` (S maps) receives the cotangent of the
  // old state (overwritten); gL the frame's; acc the scalars' (added to), dk the taps' (added to).
  void adjoint(const T* __restrict o, const T* __restrict nw, const T* __restrict L, const Work<T>& w,
               Scratch<T>& sc, const T* grates, T* __restrict g, T* __restrict h, T* __restrict gL, double* acc,
               double* dk) {
    const int64_t n = HW;
    auto O = [&](int64_t m) { return o + m * n; };
    auto N = [&](int64_t m) { return nw + m * n; };
    auto G = [&](int64_t m) { return g + m * n; };
    auto Hm = [&](int64_t m) { return h + m * n; };
    std::fill(h, h + S * n, T(0));
    const int64_t last = cfg.poles - 1;
    // 4. rates
    if (grates) {
      const T* __restrict xi = cfg.lag ? O(iCUR) : N(iCUR);
      T* __restrict gx = cfg.lag ? Hm(iCUR) : G(iCUR);
      const T leak = s[kLeak], refr = s[kRefr], thr = leak * static_cast<T>(1 + 1e-6);
      T a_leak = 0, a_refr = 0;
      for (int64_t i = 0; i < 2 * n; ++i) {
        const T x = std::max(xi[i], thr);
        const T f = std::log(x / (x - leak));
        const T rate = T(1) / (refr + f / leak);
        const T gi = xi[i] > thr ? -grates[i] * rate * rate : T(0);
        gx[i] -= gi / (x * (x - leak));
        a_leak += gi * (T(1) / ((x - leak) * leak) - f / (leak * leak));
        a_refr += gi;
      }
      acc[kLeak] += a_leak, acc[kRefr] += a_refr;
    }
    // 3. pooling, rectification, transient
    {
      const T* gN = G(iCUR);
      if (has(3)) {
        for (int64_t ch = 0; ch < 2; ++ch)
          blur[3].backward(w.rect.data() + ch * n, w.pz.data() + ch * n, G(iCUR) + ch * n, sc.gtmp2.data(),
                           sc.gtmp.data() + ch * n, dk + tap_offset[3]);
        gN = sc.gtmp.data();
      }
      const T* __restrict xn = cfg.lag ? O(iVT) : N(iVT);
      T* __restrict gxn = cfg.lag ? Hm(iVT) : G(iVT);
      const T v0 = s[kV0], i0 = s[kI0], lg = s[kLg];
      T a_v0 = 0, a_i0 = 0, a_lg = 0;
      for (int64_t ch = 0; ch < 2; ++ch) {
        const T sign = ch == 0 ? T(1) : T(-1);
        const T* __restrict gn = gN + ch * n;
        for (int64_t i = 0; i < n; ++i) {
          const T z = sign * xn[i] - v0;
          const T D = i0 - lg * std::min(z, T(0));
          const T q = i0 / D;
          const bool below = z < T(0);
          const T dz = below ? lg * q * q : lg;  // dN/dz; dN/dv0 = -dN/dz
          const T di0 = below ? q * (T(2) - q) : T(1);
          const T dlg = below ? q * q * z : z;
          a_v0 -= gn[i] * dz;
          a_i0 += gn[i] * di0;
          a_lg += gn[i] * dlg;
          gxn[i] += sign * gn[i] * dz;
        }
      }
      acc[kV0] += a_v0, acc[kI0] += a_i0, acc[kLg] += a_lg;
      const auto [a_wg, a_et] = transient_adjoint(n, cfg.lag ? O(iV) : N(iV), O(iTLP), N(iTLP), s[kEt], s[kWg],
                                                  G(iVT), G(iTLP), cfg.lag ? Hm(iV) : G(iV), Hm(iTLP));
      acc[kWg] += a_wg, acc[kEt] += a_et;
    }
    // 2. adaptation, then the bipolar potential
    {
      const T* __restrict gga = G(iGA);
      const T* __restrict gao = O(iGA);
      const T la = s[kLa];
      const bool blurred = has(2) && la != T(0);
      const T* __restrict q = blurred ? w.aq.data() : w.ar.data();
      T* __restrict hga = Hm(iGA);
      T* __restrict gq = sc.gtmp.data();
      const T ea = s[kEa];
      T a_ea = 0;
      for (int64_t i = 0; i < n; ++i) {
        gq[i] = (T(1) - ea) * gga[i];
        hga[i] += ea * gga[i];
        a_ea += gga[i] * (gao[i] - q[i]);
      }
      acc[kEa] += a_ea;
      const T* __restrict xa = cfg.lag ? O(iV) : N(iV);
      T a_la = 0;
      if (has(2) && !blurred) {
        // lambda_A = 0: no cotangent reaches V or the taps (the blur's input is 0), and lambda_A's
        // is sum(gq * blur(V^2)) (one blur instead of the transpose and the taps' sums)
        T* __restrict sq = sc.gblur.data();
        for (int64_t i = 0; i < n; ++i) sq[i] = xa[i] * xa[i];
        T* __restrict bsq = sc.gtmp2.data() + n;
        blur[2].forward(sq, sc.gtmp2.data(), bsq);
        for (int64_t i = 0; i < n; ++i) a_la += gq[i] * bsq[i];
      } else {
        const T* gr = gq;
        if (has(2)) {
          blur[2].backward(w.ar.data(), w.az.data(), gq, sc.gtmp2.data(), sc.gblur.data(), dk + tap_offset[2]);
          gr = sc.gblur.data();
        }
        T* __restrict gxa = cfg.lag ? Hm(iV) : G(iV);
        for (int64_t i = 0; i < n; ++i) {
          a_la += gr[i] * xa[i] * xa[i];
          gxa[i] += T(2) * la * gr[i] * xa[i];
        }
      }
      acc[kLa] += a_la;
      const T* __restrict gv = G(iV);
      const T* __restrict vo = O(iV);
      const T* __restrict xb = cfg.lag ? O(iI) : N(iI);
      T* __restrict hv = Hm(iV);
      T* __restrict gxb = cfg.lag ? Hm(iI) : G(iI);
      const T lb = s[kLb], g0 = s[kG0], dt = static_cast<T>(cfg.dt);
      T a_lb = 0, a_g0 = 0;
      for (int64_t i = 0; i < n; ++i) {
        const T gg0 = g0 + gao[i];
        const T inv = T(1) / gg0;
        const T vinf = lb * xb[i] * inv;
        const T E = std::exp(-dt * gg0);
        hv[i] += gv[i] * E;
        const T gvinf = gv[i] * (T(1) - E);
        const T gg = -gv[i] * (vo[i] - vinf) * dt * E - gvinf * vinf * inv;
        a_lb += gvinf * xb[i] * inv;
        gxb[i] += gvinf * lb * inv;
        a_g0 += gg;
        hga[i] += gg;
      }
      acc[kLb] += a_lb, acc[kG0] += a_g0;
    }
    // 1. OPL
    {
      const T* __restrict gi = G(iI);
      const T* __restrict gs0 = G(iS);
      const T* __restrict sn = N(iS);
      const T* __restrict so = O(iS);
      T* __restrict hs = Hm(iS);
      T* __restrict gu = sc.gu.data();
      T* __restrict gsx = sc.gtmp.data();  // the cotangent that reaches the surround's input
      const T wo = s[kWo], es = s[kEs];
      T a_wo = 0, a_es = 0;
      for (int64_t i = 0; i < n; ++i) {
        gu[i] = gi[i];
        a_wo -= gi[i] * sn[i];
        gsx[i] = gs0[i] - wo * gi[i];  // cotangent of the new surround map
      }
      const T* xs = cfg.lag ? (cfg.undershoot ? O(iU) : O(last)) : N(iU);
      T* gxs_target = cfg.lag ? (cfg.undershoot ? Hm(iU) : Hm(last)) : gu;
      T* __restrict gxs = sc.gblur.data();
      if (cfg.leaky) {
        blur[1].backward(w.spre.data(), w.sz.data(), gsx, sc.gtmp2.data(), gxs, dk + tap_offset[1]);
        for (int64_t i = 0; i < n; ++i) {
          const T ga = gxs[i];
          hs[i] += es * ga;
          a_es += ga * (so[i] - xs[i]);
          gxs[i] = (T(1) - es) * ga;
        }
      } else {
        const T* __restrict b = has(1) ? w.sb.data() : xs;
        for (int64_t i = 0; i < n; ++i) {
          hs[i] += es * gsx[i];
          a_es += gsx[i] * (so[i] - b[i]);
          gsx[i] *= (T(1) - es);
        }
        if (has(1)) {
          blur[1].backward(xs, w.sz.data(), gsx, sc.gtmp2.data(), gxs, dk + tap_offset[1]);
        } else {
          std::memcpy(gxs, gsx, n * sizeof(T));
        }
      }
      for (int64_t i = 0; i < n; ++i) gxs_target[i] += gxs[i];
      acc[kWo] += a_wo, acc[kEs] += a_es;
    }
    T* __restrict gc = sc.gc.data();  // the cotangent of the centre's output c (beyond its state's)
    std::fill(gc, gc + n, T(0));
    {
      T* __restrict gu = sc.gu.data();
      const T* __restrict gU = G(iU);
      if (cfg.undershoot) {
        for (int64_t i = 0; i < n; ++i) gu[i] += gU[i];  // the cotangent of u: its state's and its uses'
        const auto [a_wu, a_eu] = transient_adjoint(n, cfg.lag ? O(last) : N(last), O(iULP), N(iULP), s[kEu], s[kWu],
                                                    gu, G(iULP), cfg.lag ? Hm(last) : gc, Hm(iULP));
        acc[kWu] += a_wu, acc[kEu] += a_eu;
      } else {
        for (int64_t i = 0; i < n; ++i) gc[i] = gU[i] + gu[i];
        std::memcpy(Hm(iULP), G(iULP), n * sizeof(T));
      }
    }
    // the centre
    const T ec = s[kEc], gain = s[kGain];
    T a_ec = 0, a_gain = 0;
    T* __restrict gd = sc.gtmp.data();
    if (cfg.leaky) {
      const T* __restrict gC = G(0);
      for (int64_t i = 0; i < n; ++i) gc[i] += gC[i];
      T* __restrict ga = sc.gblur.data();
      blur[0].backward(w.cin.data(), w.cz.data(), gc, sc.gtmp2.data(), ga, dk + tap_offset[0]);
      const T* __restrict c0 = O(0);
      const T* __restrict d = w.drive.data();
      T* __restrict h0 = Hm(0);
      for (int64_t i = 0; i < n; ++i) {
        h0[i] += ec * ga[i];
        a_ec += ga[i] * (c0[i] - d[i]);
        gd[i] = (T(1) - ec) * ga[i];
      }
    } else {
      T* __restrict gy = gc;  // the cotangent of pole p's new value
      const T* __restrict gl = G(last);
      for (int64_t i = 0; i < n; ++i) gy[i] += gl[i];
      for (int64_t p = last; p >= 0; --p) {
        const T* __restrict x = p > 0 ? N(p - 1) : (has(0) ? w.cin.data() : w.drive.data());
        const T* __restrict cp = O(p);
        T* __restrict hp = Hm(p);
        const T* __restrict gprev = p > 0 ? G(p - 1) : nullptr;
        for (int64_t i = 0; i < n; ++i) {
          hp[i] += ec * gy[i];
          a_ec += gy[i] * (cp[i] - x[i]);
          gy[i] = (T(1) - ec) * gy[i] + (gprev ? gprev[i] : T(0));
        }
      }
      if (has(0)) {
        blur[0].backward(w.drive.data(), w.cz.data(), gy, sc.gtmp2.data(), gd, dk + tap_offset[0]);
      } else {
        std::memcpy(gd, gy, n * sizeof(T));
      }
    }
    for (int64_t i = 0; i < n; ++i) {
      a_gain += gd[i] * L[i];
      gL[i] = gain * gd[i];
    }
    acc[kEc] += a_ec, acc[kGain] += a_gain;
  }
};


template <typename T>
void forward(const Config& c, const T* movie, const T* state, const T* scalars, const T* taps, T* state_out, T* states,
             T* rates, T* opl, T* bip, T* adapt, T* cur) {
  Model<T> m(c, scalars, taps);
  const int64_t n = m.HW, sn = m.S * n;
  Work<T> w(n);
  std::vector<T> a(state, state + sn), b(sn);
  for (int64_t t = 0; t < c.T; ++t) {
    if (states && t % kSegment == 0) std::memcpy(states + (t / kSegment) * sn, a.data(), sn * sizeof(T));
    m.step(a.data(), b.data(), movie + t * n, w, rates ? rates + t * 2 * n : nullptr, opl ? opl + t * n : nullptr,
           bip ? bip + t * n : nullptr, adapt ? adapt + t * n : nullptr, cur ? cur + t * 2 * n : nullptr);
    a.swap(b);
  }
  std::memcpy(state_out, a.data(), sn * sizeof(T));
}

// The cotangents of the movie, the initial state, the scalars and the taps, from the states that
// forward() kept: segment by segment from the last, the segment's steps recomputed (their
// intermediate maps kept), then walked backwards.
template <typename T>
void backward(const Config& c, const T* movie, const T* states, const T* scalars, const T* taps, const T* g_state,
              const T* g_rates, const T* g_opl, const T* g_bip, const T* g_adapt, const T* g_cur, T* g_movie,
              T* g_state0, T* g_scalars, T* g_taps) {
  Model<T> m(c, scalars, taps);
  const int64_t n = m.HW, sn = m.S * n;
  std::vector<Work<T>> works(kSegment, Work<T>(n));  // each step's intermediate maps in a segment
  Scratch<T> scratch(n);
  std::vector<T> g(g_state, g_state + sn), h(sn), segment((kSegment + 1) * sn);
  std::vector<double> acc(kScalars, 0.0), dk(c.n_taps() + 1, 0.0);
  auto add = [&](const T* src, int64_t map, int64_t count) {
    T* __restrict dst = g.data() + map * n;
    for (int64_t i = 0; i < count; ++i) dst[i] += src[i];
  };
  for (int64_t t0 = ((c.T - 1) / kSegment) * kSegment; t0 >= 0; t0 -= kSegment) {
    const int64_t t1 = std::min(c.T, t0 + kSegment);
    std::memcpy(segment.data(), states + (t0 / kSegment) * sn, sn * sizeof(T));
    for (int64_t t = t0; t < t1; ++t)
      m.step(segment.data() + (t - t0) * sn, segment.data() + (t - t0 + 1) * sn, movie + t * n, works[t - t0], nullptr,
             nullptr, nullptr, nullptr, nullptr);
    for (int64_t t = t1 - 1; t >= t0; --t) {
      const T* o = segment.data() + (t - t0) * sn;
      if (g_opl) add(g_opl + t * n, m.iI, n);
      if (g_bip) add(g_bip + t * n, m.iV, n);
      if (g_adapt) add(g_adapt + t * n, m.iGA, n);
      if (g_cur) add(g_cur + t * 2 * n, m.iCUR, 2 * n);
      m.adjoint(o, o + sn, movie + t * n, works[t - t0], scratch, g_rates ? g_rates + t * 2 * n : nullptr, g.data(),
                h.data(), g_movie + t * n, acc.data(), dk.data());
      g.swap(h);
    }
  }
  std::memcpy(g_state0, g.data(), sn * sizeof(T));
  for (int i = 0; i < kScalars; ++i) g_scalars[i] = static_cast<T>(acc[i]);
  for (int64_t j = 0; j < c.n_taps(); ++j) g_taps[j] = static_cast<T>(dk[j]);
}

// Under vmap (vmap_method="expand_dims") every buffer has leading batch axes: `items` parts of
// `size` elements, or one part (size 1 axes) that every item shares; an empty buffer is an output
// not asked for (nullptr).
template <typename T>
struct Items {
  T* data = nullptr;
  int64_t size = 0;
  bool batched = false;
  T* at(int64_t i) const { return data == nullptr ? nullptr : data + (batched ? i * size : 0); }
};

template <typename T>
std::optional<Items<T>> items_of(void* data, int64_t count, int64_t size, int64_t n_items, bool optional) {
  Items<T> v;
  if (optional && count == 0) return v;
  if (size == 0 || (count != size && count != size * n_items)) return std::nullopt;
  v.data = static_cast<T*>(data), v.size = size, v.batched = n_items > 1 && count == size * n_items;
  return v;
}

template <typename T>
std::optional<Items<const T>> items(const ffi::AnyBuffer& b, int64_t size, int64_t n_items, bool optional = false) {
  auto v = items_of<T>(b.untyped_data(), static_cast<int64_t>(b.element_count()), size, n_items, optional);
  if (!v) return std::nullopt;
  return Items<const T>{v->data, v->size, v->batched};
}

template <typename T>
std::optional<Items<T>> items(ffi::Result<ffi::AnyBuffer>& b, int64_t size, int64_t n_items, bool optional = false) {
  return items_of<T>(b->untyped_data(), static_cast<int64_t>(b->element_count()), size, n_items, optional);
}

// fn(i) for the items 0..n-1, spread over XLA's intra-op threads.
template <typename F>
void for_items(ffi::ThreadPool& pool, int64_t n, F fn) {
  const int64_t tasks = std::max<int64_t>(1, std::min<int64_t>(n, pool.num_threads()));
  std::atomic<int64_t> next{0}, done{0};
  auto work = [&]() {
    for (int64_t i; (i = next.fetch_add(1)) < n;) fn(i);
    done.fetch_add(1, std::memory_order_release);
  };
  for (int64_t t = 1; t < tasks; ++t) pool.Schedule([&work]() { work(); });
  work();
  while (done.load(std::memory_order_acquire) < tasks) std::this_thread::yield();
}

Config read_config(const ffi::AnyBuffer& movie, int64_t poles, int64_t leaky, int64_t undershoot, int64_t lag,
                   int64_t padding, int64_t n_c, int64_t n_s, int64_t n_a, int64_t n_p, double dt) {
  const auto d = movie.dimensions();
  const size_t k = d.size();
  Config c;
  c.T = d[k - 3], c.H = d[k - 2], c.W = d[k - 1], c.poles = poles;
  c.leaky = leaky != 0, c.undershoot = undershoot != 0, c.lag = lag != 0;
  c.padding = static_cast<int>(padding), c.dt = dt;
  c.taps[0] = n_c, c.taps[1] = n_s, c.taps[2] = n_a, c.taps[3] = n_p;
  return c;
}

template <typename T>
ffi::Error forward_items(ffi::ThreadPool& pool, const Config& c, const ffi::AnyBuffer& movie,
                         const ffi::AnyBuffer& state, const ffi::AnyBuffer& scalars, const ffi::AnyBuffer& taps,
                         ffi::Result<ffi::AnyBuffer>& state_out, ffi::Result<ffi::AnyBuffer>& states,
                         ffi::Result<ffi::AnyBuffer>& rates, ffi::Result<ffi::AnyBuffer>& opl,
                         ffi::Result<ffi::AnyBuffer>& bip, ffi::Result<ffi::AnyBuffer>& adapt,
                         ffi::Result<ffi::AnyBuffer>& cur) {
  const int64_t n = c.H * c.W, sn = c.maps() * n, segments = (c.T + kSegment - 1) / kSegment;
  const int64_t N = static_cast<int64_t>(state_out->element_count()) / sn;
  const auto m = items<T>(movie, c.T * n, N);
  const auto s0 = items<T>(state, sn, N);
  const auto sc = items<T>(scalars, kScalars, N);
  const auto tp = items<T>(taps, c.n_taps(), N, c.n_taps() == 0);
  const auto so = items<T>(state_out, sn, N);
  const auto ks = items<T>(states, segments * sn, N, true);
  const auto r = items<T>(rates, c.T * 2 * n, N, true);
  const auto o = items<T>(opl, c.T * n, N, true), b = items<T>(bip, c.T * n, N, true);
  const auto a = items<T>(adapt, c.T * n, N, true);
  const auto g = items<T>(cur, c.T * 2 * n, N, true);
  if (!m || !s0 || !sc || !tp || !so || !ks || !r || !o || !b || !a || !g)
    return ffi::Error::InvalidArgument("retina: unexpected buffer sizes (movie (T, H, W), state (poles + 10, H, W))");
  for_items(pool, N, [&](int64_t i) {
    forward<T>(c, m->at(i), s0->at(i), sc->at(i), tp->at(i), so->at(i), ks->at(i), r->at(i), o->at(i), b->at(i),
               a->at(i), g->at(i));
  });
  return ffi::Error::Success();
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::AnyBuffer movie, ffi::AnyBuffer state, ffi::AnyBuffer scalars,
                   ffi::AnyBuffer taps, ffi::Result<ffi::AnyBuffer> state_out, ffi::Result<ffi::AnyBuffer> states,
                   ffi::Result<ffi::AnyBuffer> rates, ffi::Result<ffi::AnyBuffer> opl, ffi::Result<ffi::AnyBuffer> bip,
                   ffi::Result<ffi::AnyBuffer> adapt, ffi::Result<ffi::AnyBuffer> cur, int64_t poles, int64_t leaky,
                   int64_t undershoot, int64_t lag, int64_t padding, int64_t n_c, int64_t n_s, int64_t n_a,
                   int64_t n_p, double dt) {
  if (movie.dimensions().size() < 3) return ffi::Error::InvalidArgument("retina: movie must be (T, H, W)");
  const Config c = read_config(movie, poles, leaky, undershoot, lag, padding, n_c, n_s, n_a, n_p, dt);
  switch (movie.element_type()) {
    case ffi::DataType::F32:
      return forward_items<float>(pool, c, movie, state, scalars, taps, state_out, states, rates, opl, bip, adapt, cur);
    case ffi::DataType::F64:
      return forward_items<double>(pool, c, movie, state, scalars, taps, state_out, states, rates, opl, bip, adapt,
                                   cur);
    default:
      return ffi::Error::InvalidArgument("retina: expected float32 or float64");
  }
}

template <typename T>
ffi::Error backward_items(ffi::ThreadPool& pool, const Config& c, const ffi::AnyBuffer& movie,
                          const ffi::AnyBuffer& states, const ffi::AnyBuffer& scalars, const ffi::AnyBuffer& taps,
                          const ffi::AnyBuffer& g_state, const ffi::AnyBuffer& g_rates, const ffi::AnyBuffer& g_opl,
                          const ffi::AnyBuffer& g_bip, const ffi::AnyBuffer& g_adapt, const ffi::AnyBuffer& g_cur,
                          ffi::Result<ffi::AnyBuffer>& g_movie, ffi::Result<ffi::AnyBuffer>& g_state0,
                          ffi::Result<ffi::AnyBuffer>& g_scalars, ffi::Result<ffi::AnyBuffer>& g_taps) {
  const int64_t n = c.H * c.W, sn = c.maps() * n, segments = (c.T + kSegment - 1) / kSegment;
  const int64_t N = static_cast<int64_t>(g_state0->element_count()) / sn;
  const auto m = items<T>(movie, c.T * n, N);
  const auto ks = items<T>(states, segments * sn, N, c.T == 0);
  const auto sc = items<T>(scalars, kScalars, N);
  const auto tp = items<T>(taps, c.n_taps(), N, c.n_taps() == 0);
  const auto gs = items<T>(g_state, sn, N);
  const auto gr = items<T>(g_rates, c.T * 2 * n, N, true);
  const auto go = items<T>(g_opl, c.T * n, N, true), gb = items<T>(g_bip, c.T * n, N, true);
  const auto ga = items<T>(g_adapt, c.T * n, N, true);
  const auto gc = items<T>(g_cur, c.T * 2 * n, N, true);
  const auto gm = items<T>(g_movie, c.T * n, N, c.T == 0), g0 = items<T>(g_state0, sn, N);
  const auto gsc = items<T>(g_scalars, kScalars, N), gt = items<T>(g_taps, c.n_taps(), N, c.n_taps() == 0);
  if (!m || !ks || !sc || !tp || !gs || !gr || !go || !gb || !ga || !gc || !gm || !g0 || !gsc || !gt)
    return ffi::Error::InvalidArgument("retina: unexpected buffer sizes (states (ceil(T / 16), poles + 10, H, W))");
  for_items(pool, N, [&](int64_t i) {
    backward<T>(c, m->at(i), ks->at(i), sc->at(i), tp->at(i), gs->at(i), gr->at(i), go->at(i), gb->at(i), ga->at(i),
                gc->at(i), gm->at(i), g0->at(i), gsc->at(i), gt->at(i));
  });
  return ffi::Error::Success();
}

ffi::Error Backward(ffi::ThreadPool pool, ffi::AnyBuffer movie, ffi::AnyBuffer states, ffi::AnyBuffer scalars,
                    ffi::AnyBuffer taps, ffi::AnyBuffer g_state, ffi::AnyBuffer g_rates, ffi::AnyBuffer g_opl,
                    ffi::AnyBuffer g_bip, ffi::AnyBuffer g_adapt, ffi::AnyBuffer g_cur,
                    ffi::Result<ffi::AnyBuffer> g_movie, ffi::Result<ffi::AnyBuffer> g_state0,
                    ffi::Result<ffi::AnyBuffer> g_scalars, ffi::Result<ffi::AnyBuffer> g_taps, int64_t poles,
                    int64_t leaky, int64_t undershoot, int64_t lag, int64_t padding, int64_t n_c, int64_t n_s,
                    int64_t n_a, int64_t n_p, double dt) {
  if (movie.dimensions().size() < 3) return ffi::Error::InvalidArgument("retina: movie must be (T, H, W)");
  const Config c = read_config(movie, poles, leaky, undershoot, lag, padding, n_c, n_s, n_a, n_p, dt);
  switch (movie.element_type()) {
    case ffi::DataType::F32:
      return backward_items<float>(pool, c, movie, states, scalars, taps, g_state, g_rates, g_opl, g_bip, g_adapt,
                                   g_cur, g_movie, g_state0, g_scalars, g_taps);
    case ffi::DataType::F64:
      return backward_items<double>(pool, c, movie, states, scalars, taps, g_state, g_rates, g_opl, g_bip, g_adapt,
                                    g_cur, g_movie, g_state0, g_scalars, g_taps);
    default:
      return ffi::Error::InvalidArgument("retina: expected float32 or float64");
  }
}

}  // namespace

#define VJ_CONFIG_ATTRS                                                                                      \
  .Attr<int64_t>("poles").Attr<int64_t>("leaky").Attr<int64_t>("undershoot").Attr<int64_t>("lag")          \
      .Attr<int64_t>("padding").Attr<int64_t>("n_c").Attr<int64_t>("n_s").Attr<int64_t>("n_a")             \
      .Attr<int64_t>("n_p").Attr<double>("dt")

XLA_FFI_DEFINE_HANDLER_SYMBOL(VisionJaxRetinaForward, Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()  // movie (T, H, W)
                                  .Arg<ffi::AnyBuffer>()  // state (S, H, W)
                                  .Arg<ffi::AnyBuffer>()  // scalars (17,)
                                  .Arg<ffi::AnyBuffer>()  // taps
                                  .Ret<ffi::AnyBuffer>()  // final state
                                  .Ret<ffi::AnyBuffer>()  // every 16th state (ceil(T / 16), S, H, W) or empty
                                  .Ret<ffi::AnyBuffer>()  // rates (T, 2, H, W) or empty
                                  .Ret<ffi::AnyBuffer>()  // I_OPL (T, H, W) or empty
                                  .Ret<ffi::AnyBuffer>()  // bipolar
                                  .Ret<ffi::AnyBuffer>()  // adaptation
                                  .Ret<ffi::AnyBuffer>()  // ganglion input (T, 2, H, W) or empty
                                      VJ_CONFIG_ATTRS);

XLA_FFI_DEFINE_HANDLER_SYMBOL(VisionJaxRetinaBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()  // movie
                                  .Arg<ffi::AnyBuffer>()  // every 16th state (ceil(T / 16), S, H, W)
                                  .Arg<ffi::AnyBuffer>()  // scalars
                                  .Arg<ffi::AnyBuffer>()  // taps
                                  .Arg<ffi::AnyBuffer>()  // cotangent of the final state
                                  .Arg<ffi::AnyBuffer>()  // of the rates (or empty)
                                  .Arg<ffi::AnyBuffer>()  // of I_OPL (or empty)
                                  .Arg<ffi::AnyBuffer>()  // of the bipolar potential (or empty)
                                  .Arg<ffi::AnyBuffer>()  // of the adaptation (or empty)
                                  .Arg<ffi::AnyBuffer>()  // of the ganglion input (or empty)
                                  .Ret<ffi::AnyBuffer>()  // cotangent of the movie
                                  .Ret<ffi::AnyBuffer>()  // of the initial state
                                  .Ret<ffi::AnyBuffer>()  // of the scalars
                                  .Ret<ffi::AnyBuffer>()  // of the taps
                                      VJ_CONFIG_ATTRS);
