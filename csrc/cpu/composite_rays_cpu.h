// The per-ray work of the CPU compositing kernels (composite_rays, composite_rays_merged).
//
// A ray is given by its densities and depths as contiguous [S] arrays (the input's own
// rows for composite_rays, a per-ray merged copy for composite_rays_merged) and a `Rows`
// policy that says where sample s's colour row lives, so the channel loops read (and the
// backward writes) colour rows in place and nothing of size [S, C] is copied. The scalar
// math is in common/composite.h; this file adds the channel loops and the scratch.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/composite.h"
#include "cpu/composite_rays_intervals.h"

namespace nofa {

// Sample s is row s of one [S, C] block (composite_rays).
struct ContiguousRows {
  int64_t C;
  template <typename P>
  P* at(P* a, P* /*b*/, int64_t s) const {
    return a + s * C;
  }
};

// Sample s is row src[s] of the concatenation of set a's [S_a, C] rows and set b's
// [S_b, C] rows (composite_rays_merged).
struct MergedRows {
  const int64_t* src;
  int64_t Sa, C;
  template <typename P>
  P* at(P* a, P* b, int64_t s) const {
    const int64_t i = src[s];
    return i < Sa ? a + i * C : b + (i - Sa) * C;
  }
};

// Per-thread scratch of the per-ray code, sized once per task.
template <typename T>
struct RayScratch {
  std::vector<T> buf, grgb, e;
  RayScratch(int64_t S, int64_t C) : buf((S - 1) * kScratch), grgb(C), e(S) {}
};

// Forward of one ray: weights into w [K], the depth, features into f [C].
// features[c] = sum_k w_k (c_k + c_{k+1}) / 2, summed per sample: sum_s c_s (w_{s-1} + w_s) / 2.
template <typename T, typename Rows>
T forward_ray(const T* den, const T* z, int64_t K, int64_t C, const Rows& rows, const T* col_a,
              const T* col_b, T* w, T* f, T lo, T hi, bool white, isa::Isa tier,
              RayScratch<T>& sc) {
  T wsum, zsum;
  fill_intervals_cpu(den, z, K, sc.buf.data(), tier);
  ray_weights(z, K, AlphaFromScratch<T>{sc.buf.data(), K, 1}, w, UnitStride{}, wsum, zsum);
  std::fill(f, f + C, T(0));
  for (int64_t s = 0; s <= K; ++s) {
    const T u = ((s > 0 ? w[s - 1] : T(0)) + (s < K ? w[s] : T(0))) / T(2);
    const T* cs = rows.at(col_a, col_b, s);
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) f[c] += u * cs[c];
  }
  for (int64_t c = 0; c < C; ++c) {
    T v = f[c];
    if (white) v = v + T(1) - wsum;
    f[c] = v * T(2) - T(1);
  }
  return ray_depth(zsum, wsum, lo, hi);
}

// Cotangents of one ray's outputs, each optional.
template <typename T>
struct RayGrads {
  const T* gf;  // [C] or null
  T gz;         // 0 when none
  const T* gw;  // [K] or null
};

// Backward of one ray. gden [S] (overwritten) receives dL/d densities and gdep [S] (may be
// null) dL/d depths without the clamp-bound part, which is returned in glo / ghi; colour
// gradients go to the rows of gcol_a / gcol_b that `rows` names (unless both are null;
// zeros when there is no features cotangent).
template <typename T, typename Rows>
void backward_ray(const T* den, const T* z, int64_t K, int64_t C, const Rows& rows, const T* col_a,
                  const T* col_b, const RayGrads<T>& g, T lo, T hi, bool white, isa::Isa tier,
                  RayScratch<T>& sc, T* gden, T* gdep, T* gcol_a, T* gcol_b, T& glo, T& ghi) {
  const int64_t S = K + 1;
  RayCotangents<T> ct{nullptr, g.gw, T(0), g.gz, lo, hi};
  T* grgb = sc.grgb.data();
  if (g.gf) {
    T total = T(0);
    for (int64_t c = 0; c < C; ++c) {
      grgb[c] = T(2) * g.gf[c];  // features = rgb * 2 - 1
      total += grgb[c];
    }
    if (white) ct.gw_const = -total;
    for (int64_t s = 0; s < S; ++s) {
      const T* cs = rows.at(col_a, col_b, s);
      T acc = T(0);
#pragma omp simd reduction(+ : acc)
      for (int64_t c = 0; c < C; ++c) acc += grgb[c] * cs[c];
      sc.e[s] = acc;
    }
    ct.e = sc.e.data();
  }
  T* buf = sc.buf.data();
  fill_intervals_cpu(den, z, K, buf, tier);
  ray_backward(z, K, ct, buf, UnitStride{}, gden, gdep, glo, ghi);
  if (!gcol_a && !gcol_b) return;
  for (int64_t s = 0; s < S; ++s) {
    T* gcs = rows.at(gcol_a, gcol_b, s);
    if (!g.gf) {
      std::fill(gcs, gcs + C, T(0));
      continue;
    }
    // Field kTrans of the scratch now holds the weights.
    const T u = ((s > 0 ? buf[s - 1] : T(0)) + (s < K ? buf[s] : T(0))) / T(2);
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) gcs[c] = u * grgb[c];
  }
}

// min / max of n values, folded into lo / hi (NaN if any value is NaN, like torch.min /
// max). Serial: one pass costs less than waking the thread pool.
template <typename T>
void fold_depth_range(const T* z, int64_t n, T& lo, T& hi) {
  if (lo != lo) return;
  for (int64_t i = 0; i < n; ++i) {
    const T v = z[i];
    if (v != v) {
      lo = hi = v;
      return;
    }
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
}

// Sum of the per-ray (dL/d lo, dL/d hi) pairs, bounds [rays, 2].
template <typename T>
void total_bound_grads(const T* bounds, int64_t rays, T& tlo, T& thi) {
  tlo = thi = T(0);
  for (int64_t r = 0; r < rays; ++r) {
    tlo += bounds[2 * r];
    thi += bounds[2 * r + 1];
  }
}

// The CPU twin of add_bound_grads (composite_rays.h) over one or more depth tensors that
// share one [lo, hi] range: the bound's total gradient is shared evenly between all
// elements (of all tensors) equal to it, as torch.min / max of their concatenation would.
template <typename T>
struct DepthSpan {
  T* grad;
  const T* z;
  int64_t n;
};

template <typename T>
void add_bound_grads_cpu(const std::vector<DepthSpan<T>>& spans, T lo, T hi, T tlo, T thi) {
  if (tlo == T(0) && thi == T(0)) return;  // usually no ray's depth sits on a bound
  int64_t nlo = 0, nhi = 0;
  for (const auto& sp : spans) {
    for (int64_t i = 0; i < sp.n; ++i) {
      nlo += sp.z[i] == lo;
      nhi += sp.z[i] == hi;
    }
  }
  const T slo = bound_share(tlo, nlo), shi = bound_share(thi, nhi);
  for (const auto& sp : spans) {
    for (int64_t i = 0; i < sp.n; ++i) {
      if (sp.z[i] == lo) sp.grad[i] += slo;
      if (sp.z[i] == hi) sp.grad[i] += shi;
    }
  }
}

}  // namespace nofa
