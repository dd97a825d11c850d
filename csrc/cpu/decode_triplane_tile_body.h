// The width-generic body of decode_triplane's vector paths (cpu/decode_triplane_tile.h). No include
// guard on purpose: each tier's source includes it once, inside its own namespace and
// `#pragma GCC target` region, after defining the primitives it is written against:
//   V, kW (floats per vector), kGroup (points per register block), kVB (output vectors
//   per register block), zero, set1, loadu, storeu, add, sub, mul, fmadd (a b + c),
//   fnmadd (c - a b), fmsub (a b - c), max, abs, select_neg (x < 0 ? a : b), hsum,
//   load_first / store_first (the first n lanes), exp_nonpositive, reciprocal,
//   softplus_forward.

constexpr int CV = kC / kW, HV = kHd / kW, OV = kOP / kW;

// Random-ish points make the lookups latency-bound: the taps of a point are computed
// kAhead points early, their texels prefetched, and the record kept in a small ring until
// the point is gathered (so the tap arithmetic is done once, not once to prefetch and once
// to read). Taps outside the planes point at a row of zeros with weight 0: no branches.
constexpr int kAhead = 8;
constexpr int kRing = 16;  // power of two > kAhead

struct PointTaps {
  const float* src[12];  // plane p, corner k -> entry 4 p + k
  float w[12];
};

class TapRing {
 public:
  TapRing(const Source& s, int64_t i0, int64_t i1) : s_(s), i1_(i1) {
    for (int64_t i = i0; i < (i1 < i0 + kAhead ? i1 : i0 + kAhead); ++i) fill(i);
  }
  // Taps of point i (in order: i0, i0 + 1, ...); schedules point i + kAhead.
  const PointTaps& take(int64_t i) {
    if (i + kAhead < i1_) fill(i + kAhead);
    return ring_[i & (kRing - 1)];
  }

 private:
  void fill(int64_t i) {
    PointTaps& r = ring_[i & (kRing - 1)];
    const int64_t n = i / s_.M, HW = s_.H * s_.W;
    const float* q = s_.pts + i * 3;
    const float x = q[0] * s_.scale, y = q[1] * s_.scale, z = q[2] * s_.scale;
    for (int p = 0; p < 3; ++p) {
      float u, v;
      plane_uv(p, x, y, z, u, v);
      BilinearTaps<float> t;
      bilinear_taps(u, v, s_.H, s_.W, t);
      const float* base = s_.planes + (n * 3 + p) * HW * kC;
      for (int k = 0; k < 4; ++k) {
        const bool in = t.off[k] >= 0;
        const float* a = in ? base + t.off[k] * kC : kZeros;
        r.src[4 * p + k] = a;
        r.w[4 * p + k] = in ? t.w[k] : 0.0f;
        if (in) {
          for (int b = 0; b < kC; b += 16) __builtin_prefetch(a + b);  // one cache line
        }
      }
    }
  }
  const Source& s_;
  int64_t i1_;
  PointTaps ring_[kRing];
};

// Sum over the three planes (not yet the mean) of the bilinear features of one point -> f[kC].
inline void gather(const PointTaps& t, float* f) {
  V acc[CV];
  for (int v = 0; v < CV; ++v) acc[v] = zero();
#pragma GCC unroll 12
  for (int k = 0; k < 12; ++k) {
    const V w = set1(t.w[k]);
    for (int c = 0; c < CV; ++c) acc[c] = fmadd(w, loadu(t.src[k] + kW * c), acc[c]);
  }
  for (int c = 0; c < CV; ++c) storeu(f + kW * c, acc[c]);
}

// The one matrix product of both layers and both backward products: y = W x + b for the
// kGroup points of a block, output vectors [v0, v0 + B), in registers. x: row p of the
// block at x + p * xs (rows >= g repeat row 0), n inputs; W^T: row k (the weights of input
// k for every output) at wt + k * ws; bias: one value per output (kZeros for none). Each
// weight vector is loaded once for all points of the block; epi(p, v, y) consumes each
// result vector of the g real points.
template <int B, class Epi>
inline __attribute__((always_inline)) void dense_block(const float* wt, int64_t ws,
                                                       const float* bias, const float* x,
                                                       int64_t xs, int n, int g, int v0, Epi& epi) {
  V y[kGroup][B];
  for (int p = 0; p < kGroup; ++p)
    for (int j = 0; j < B; ++j) y[p][j] = loadu(bias + (v0 + j) * kW);
#pragma GCC unroll 4
  for (int k = 0; k < n; ++k) {
    V row[B];
    for (int j = 0; j < B; ++j) row[j] = loadu(wt + k * ws + (v0 + j) * kW);
    for (int p = 0; p < kGroup; ++p) {
      const V b = set1(x[(p < g ? p : 0) * xs + k]);
      for (int j = 0; j < B; ++j) y[p][j] = fmadd(b, row[j], y[p][j]);
    }
  }
  for (int p = 0; p < kGroup; ++p)
    if (p < g)
      for (int j = 0; j < B; ++j) epi(p, v0 + j, y[p][j]);
}

// The last rem (< B) output vectors: one block of exactly rem vectors.
template <int B, class Epi>
inline void dense_tail(int rem, const float* wt, int64_t ws, const float* bias, const float* x,
                       int64_t xs, int n, int g, int v0, Epi& epi) {
  if constexpr (B > 1) {
    if (rem == B - 1) {
      dense_block<B - 1>(wt, ws, bias, x, xs, n, g, v0, epi);
    } else {
      dense_tail<B - 1>(rem, wt, ws, bias, x, xs, n, g, v0, epi);
    }
  }
}

// Output vectors [0, nv) in blocks of kVB.
template <class Epi>
inline void dense(const float* wt, int64_t ws, const float* bias, const float* x, int64_t xs, int n,
                  int g, int nv, Epi&& epi) {
  int v = 0;
  for (; v + kVB <= nv; v += kVB) dense_block<kVB>(wt, ws, bias, x, xs, n, g, v, epi);
  if (v < nv) dense_tail<kVB>(nv - v, wt, ws, bias, x, xs, n, g, v, epi);
}

// log1p(t) for t in [0, 1] as 2 atanh(s), s = t / (2 + t) in [0, 1/3]: no cancellation for
// small t; the odd series is cut after s^13 (remainder < 2e-8 relative).
inline V log1p_unit(V t) {
  const V s = mul(t, reciprocal(add(t, set1(2.0f))));
  const V s2 = mul(s, s);
  V p = set1(1.0f / 13.0f);
  p = fmadd(p, s2, set1(1.0f / 11.0f));
  p = fmadd(p, s2, set1(1.0f / 9.0f));
  p = fmadd(p, s2, set1(1.0f / 7.0f));
  p = fmadd(p, s2, set1(1.0f / 5.0f));
  p = fmadd(p, s2, set1(1.0f / 3.0f));
  p = fmadd(p, s2, set1(1.0f));
  return mul(add(s, s), p);
}

// softplus(z) = max(z, 0) + log1p(exp(-|z|)) and its derivative sigmoid(z). PyTorch returns
// z itself above its threshold of 20; there the log1p term is below half an ulp of z, so
// the two agree.
inline V softplus(V z, V* grad) {
  const V t = exp_nonpositive(sub(zero(), abs(z)));
  if (grad) {
    const V r = reciprocal(add(t, set1(1.0f)));
    *grad = select_neg(z, mul(r, t), r);  // t / (1 + t) or 1 / (1 + t)
  }
  return add(max(zero(), z), log1p_unit(t));
}

inline V sigmoid(V x) {
  const V t = exp_nonpositive(sub(zero(), abs(x)));
  const V r = reciprocal(add(t, set1(1.0f)));
  return select_neg(x, mul(r, t), r);
}

// Forward of points [i0, i1): density [P] and features [P, F] rows.
void forward_range(const Weights& w, const Source& s, int64_t i0, int64_t i1, float* dens,
                   float* feat) {
  alignas(64) float f[kGroup][kC];
  alignas(64) float h[kGroup][kHd];
  const V scale = set1(1.002f), shift = set1(0.001f);
  const int F = w.F, nv = (F + kW - 1) / kW;
  TapRing ring(s, i0, i1);
  for (int64_t i = i0; i < i1; i += kGroup) {
    const int g = i1 - i < kGroup ? static_cast<int>(i1 - i) : kGroup;
    for (int p = 0; p < g; ++p) gather(ring.take(i + p), f[p]);
    dense(&w.w0t[0][0], kHd, w.b0, &f[0][0], kC, kC, g, HV,
          [&](int p, int v, V z) { storeu(&h[p][kW * v], softplus_forward(z)); });
    for (int p = 0; p < g; ++p) {
      V d = zero();
      for (int v = 0; v < HV; ++v) d = fmadd(loadu(&h[p][kW * v]), loadu(w.w1d + kW * v), d);
      dens[i + p] = hsum(d) + w.b1d;
    }
    if (nv == 0) continue;
    dense(&w.w1t[0][0], kOP, w.b1, &h[0][0], kHd, kHd, g, nv, [&](int p, int v, V o) {
      float* fo = feat + (i + p) * F + kW * v;
      const int cnt = F - kW * v > kW ? kW : F - kW * v;
      const V y = fmsub(sigmoid(o), scale, shift);
      if (cnt == kW) {
        storeu(fo, y);
      } else {
        store_first(fo, y, cnt);
      }
    });
  }
}

// Backward of points [i0, i1) (see Kernels::backward).
void backward_range(const Weights& w, const Source& s, int64_t i0, int64_t i1, const float* gd,
                    const float* gf, const BackwardTile& t) {
  alignas(64) float f[kGroup][kC];
  alignas(64) float sg[kGroup][kOP];               // the feature logits' sigmoids, when recomputed
  alignas(64) float sb0[kHd] = {}, sb1[kOP] = {};  // this range's bias-gradient sums
  const int F = w.F, nv = (F + kW - 1) / kW;
  const V third = set1(1.0f / 3.0f), one = set1(1.0f);
  const V widen = set1(1.002f), inv_widen = set1(1.0f / 1.002f), shift = set1(0.001f);
  TapRing ring(s, i0, i1);
  for (int64_t i = i0; i < i1; i += kGroup) {
    const int g = i1 - i < kGroup ? static_cast<int>(i1 - i) : kGroup;
    for (int p = 0; p < g; ++p) gather(ring.take(i + p), f[p]);
    const int64_t r0 = i - i0;  // first tile row of the group
    float* h = t.h + r0 * kHd;
    float* gz = t.gz + r0 * kHd;
    float* gout = t.gout + r0 * kOP;
    for (int p = 0; p < g; ++p)
      for (int v = 0; v < CV; ++v)
        storeu(t.fmean + (r0 + p) * kC + kW * v, mul(loadu(f[p] + kW * v), third));
    // h = softplus(z); gz holds softplus'(z) for now, d loss / d z below.
    dense(&w.w0t[0][0], kHd, w.b0, &f[0][0], kC, kC, g, HV, [&](int p, int v, V z) {
      V dz;
      storeu(h + p * kHd + kW * v, softplus(z, &dz));
      storeu(gz + p * kHd + kW * v, dz);
    });
    // Only the feature logits' sigmoids are needed (the density's gradient passes straight
    // through): from the forward's features when given, s = (features + 0.001) / 1.002.
    if (!t.feat && nv > 0)
      dense(&w.w1t[0][0], kOP, w.b1, h, kHd, kHd, g, nv,
            [&](int p, int v, V o) { storeu(&sg[p][kW * v], sigmoid(o)); });
    for (int p = 0; p < g; ++p) {
      float* go = gout + p * kOP;
      const float* gfr = gf + (i + p) * F;
      for (int v = 0; v < OV; ++v) {
        const int j = kW * v;
        const int cnt = F - j < 0 ? 0 : (F - j > kW ? kW : F - j);
        if (cnt == 0) {
          storeu(go + j, zero());
          continue;
        }
        const V sv = t.feat ? mul(add(load_first(t.feat + (i + p) * F + j, cnt), shift), inv_widen)
                            : loadu(&sg[p][j]);
        // d features / d logit = 1.002 * s * (1 - s); lanes past F get a zero upstream.
        storeu(go + j, mul(mul(load_first(gfr + j, cnt), widen), mul(sv, sub(one, sv))));
      }
      go[F] = gd[i + p];
      for (int v = 0; v < OV; ++v)
        storeu(sb1 + kW * v, add(loadu(sb1 + kW * v), loadu(go + kW * v)));
    }
    // gh = W1^T gout, and gz = gh * softplus'(z).
    dense(&w.w1p[0][0], kHd, kZeros, gout, kOP, F + 1, g, HV, [&](int p, int v, V gh) {
      float* q = gz + p * kHd + kW * v;
      const V d = mul(gh, loadu(q));
      storeu(q, d);
      storeu(sb0 + kW * v, add(loadu(sb0 + kW * v), d));
    });
    // gfeat = W0^T gz.
    dense(&w.w0[0][0], kC, kZeros, gz, kHd, kHd, g, CV,
          [&](int p, int v, V y) { storeu(t.gfeat + (i + p) * kC + kW * v, y); });
  }
  for (int v = 0; v < HV; ++v)
    storeu(t.gb0 + kW * v, add(loadu(t.gb0 + kW * v), loadu(sb0 + kW * v)));
  for (int v = 0; v < OV; ++v)
    storeu(t.gb1 + kW * v, add(loadu(t.gb1 + kW * v), loadu(sb1 + kW * v)));
}

const Kernels kKernels{kIsa, &forward_range, &backward_range};
