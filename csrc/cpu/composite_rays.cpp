// composite_rays on the CPU: forward and backward, parallel over rays.
//
// Each ray is independent, so each thread owns whole rays: no atomics, deterministic.
// The per-ray scalar math (weights, transmittance suffix sums) is in common/composite.h;
// this file adds the channel loops. Nothing of size [N, R, S, C] is allocated besides the
// colour gradient itself.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "common/composite.h"
#include "composite_rays.h"
#include "cpu/composite_intervals.h"

namespace nofa {
namespace {

constexpr int64_t kGrain = 16;  // rays per task: a ray is ~S*C multiply-adds

template <typename T>
struct Dims {
  int64_t rays, S, C, K;
  bool simd;  // fill_intervals_cpu may use SIMD
};

// features[c] = sum_k w_k (c_k + c_{k+1}) / 2, summed per sample: sum_s c_s (w_{s-1} + w_s) / 2.
template <typename T>
void forward_rays(const T* col, const T* den, const T* z, T* feat, T* depth, T* w,
                  const Dims<T>& d, T lo, T hi, bool white, int64_t begin, int64_t end) {
  std::vector<T> buf(d.K * kScratch);
  for (int64_t r = begin; r < end; ++r) {
    T wsum, zsum;
    T* wr = w + r * d.K;
    const T* zr = z + r * d.S;
    fill_intervals_cpu(den + r * d.S, zr, d.K, buf.data(), d.simd);
    ray_weights(zr, d.K, AlphaFromScratch<T>{buf.data(), d.K, 1}, wr, int64_t(1), wsum, zsum);
    depth[r] = ray_depth(zsum, wsum, lo, hi);
    T* f = feat + r * d.C;
    std::fill(f, f + d.C, T(0));
    const T* cr = col + r * d.S * d.C;
    for (int64_t s = 0; s < d.S; ++s) {
      const T u = ((s > 0 ? wr[s - 1] : T(0)) + (s < d.K ? wr[s] : T(0))) / T(2);
      const T* cs = cr + s * d.C;
#pragma omp simd
      for (int64_t c = 0; c < d.C; ++c) f[c] += u * cs[c];
    }
    for (int64_t c = 0; c < d.C; ++c) {
      T v = f[c];
      if (white) v = v + T(1) - wsum;
      f[c] = v * T(2) - T(1);
    }
  }
}

template <typename T>
struct Grads {
  const T* gf;  // [rays, C] or null
  const T* gz;  // [rays] or null
  const T* gw;  // [rays, K] or null
  T* gcol;      // [rays, S, C] or null
  T* gden;      // [rays, S] or null
  T* gdep;      // [rays, S] or null
  T* bounds;    // [rays, 2] or null
};

template <typename T>
void backward_rays(const T* col, const T* den, const T* z, const Grads<T>& g, const Dims<T>& d,
                   T lo, T hi, bool white, int64_t begin, int64_t end) {
  std::vector<T> grgb(d.C), e(d.S), buf(d.K * kScratch), gden_scratch(d.S);
  for (int64_t r = begin; r < end; ++r) {
    const T* cr = col + r * d.S * d.C;
    RayCotangents<T> ct{nullptr, g.gw ? g.gw + r * d.K : nullptr, T(0),
                        g.gz ? g.gz[r] : T(0), lo, hi};
    if (g.gf) {
      T total = T(0);
      for (int64_t c = 0; c < d.C; ++c) {
        grgb[c] = T(2) * g.gf[r * d.C + c];  // features = rgb * 2 - 1
        total += grgb[c];
      }
      if (white) ct.gw_const = -total;
      for (int64_t s = 0; s < d.S; ++s) {
        const T* cs = cr + s * d.C;
        T acc = T(0);
#pragma omp simd reduction(+ : acc)
        for (int64_t c = 0; c < d.C; ++c) acc += grgb[c] * cs[c];
        e[s] = acc;
      }
      ct.e = e.data();
    }
    T glo, ghi;
    T* gden = g.gden ? g.gden + r * d.S : gden_scratch.data();
    fill_intervals_cpu(den + r * d.S, z + r * d.S, d.K, buf.data(), d.simd);
    ray_backward(z + r * d.S, d.K, ct, buf.data(), int64_t(1), gden,
                 g.gdep ? g.gdep + r * d.S : nullptr, glo, ghi);
    if (g.bounds) {
      g.bounds[2 * r] = glo;
      g.bounds[2 * r + 1] = ghi;
    }
    if (g.gcol) {
      T* gc = g.gcol + r * d.S * d.C;
      if (!g.gf) {
        std::fill(gc, gc + d.S * d.C, T(0));
        continue;
      }
      for (int64_t s = 0; s < d.S; ++s) {
        // Field kTrans of the scratch now holds the weights.
        const T u = ((s > 0 ? buf[s - 1] : T(0)) + (s < d.K ? buf[s] : T(0))) / T(2);
        T* gcs = gc + s * d.C;
#pragma omp simd
        for (int64_t c = 0; c < d.C; ++c) gcs[c] = u * grgb[c];
      }
    }
  }
}

// min / max of the whole depths tensor (NaN if any depth is NaN, like torch.min / max).
// Serial: one pass over rays * S values costs less than waking the thread pool.
template <typename T>
void depth_range(const T* z, int64_t n, T& lo, T& hi) {
  lo = hi = z[0];
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

// The CPU twin of add_bound_grads (composite_rays.h), in plain loops: usually no ray's
// depth sits on a bound and nothing is to be done.
template <typename T>
void add_bound_grads(T* gz, const T* z, int64_t n, T lo, T hi, const T* bounds, int64_t rays) {
  T tlo = T(0), thi = T(0);
  for (int64_t r = 0; r < rays; ++r) {
    tlo += bounds[2 * r];
    thi += bounds[2 * r + 1];
  }
  if (tlo == T(0) && thi == T(0)) return;
  int64_t nlo = 0, nhi = 0;
  for (int64_t i = 0; i < n; ++i) {
    nlo += z[i] == lo;
    nhi += z[i] == hi;
  }
  const T slo = tlo / T(nlo), shi = thi / T(nhi);
  for (int64_t i = 0; i < n; ++i) {
    if (z[i] == lo) gz[i] += slo;
    if (z[i] == hi) gz[i] += shi;
  }
}

template <typename T>
Dims<T> dims_of(const at::Tensor& colors) {
  const int64_t S = colors.size(2);
  return Dims<T>{colors.size(0) * colors.size(1), S, colors.size(3), S - 1, use_simd_intervals()};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> composite_rays_cpu(const at::Tensor& colors,
                                                                  const at::Tensor& densities,
                                                                  const at::Tensor& depths,
                                                                  bool white_back) {
  check_composite_rays(colors, densities, depths);
  const int64_t N = colors.size(0), R = colors.size(1), S = colors.size(2), C = colors.size(3);
  auto feat = at::empty({N, R, C}, colors.options());
  auto depth = at::empty({N, R, 1}, colors.options());
  auto weights = at::empty({N, R, S - 1, 1}, colors.options());
  if (N * R == 0) return {feat, depth, weights};
  const auto col = colors.contiguous(), den = densities.contiguous(), z = depths.contiguous();
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "composite_rays_cpu", [&] {
    const auto d = dims_of<scalar_t>(colors);
    const scalar_t *cp = col.data_ptr<scalar_t>(), *dp = den.data_ptr<scalar_t>(), *zp = z.data_ptr<scalar_t>();
    scalar_t lo, hi;
    depth_range(zp, d.rays * d.S, lo, hi);
    scalar_t *fp = feat.data_ptr<scalar_t>(), *op = depth.data_ptr<scalar_t>(), *wp = weights.data_ptr<scalar_t>();
    at::parallel_for(0, d.rays, kGrain, [&](int64_t b, int64_t e) {
      forward_rays(cp, dp, zp, fp, op, wp, d, lo, hi, white_back, b, e);
    });
  });
  return {feat, depth, weights};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> composite_rays_backward_cpu(
    const std::optional<at::Tensor>& grad_features, const std::optional<at::Tensor>& grad_depth,
    const std::optional<at::Tensor>& grad_weights, const at::Tensor& colors,
    const at::Tensor& densities, const at::Tensor& depths, bool white_back, bool colors_grad,
    bool densities_grad, bool depths_grad) {
  check_composite_rays(colors, densities, depths);
  const int64_t N = colors.size(0), R = colors.size(1), S = colors.size(2), C = colors.size(3);
  const auto gf = cotangent(grad_features, colors, {N, R, C}, "grad_features");
  const auto gz = cotangent(grad_depth, colors, {N, R, 1}, "grad_depth");
  const auto gw = cotangent(grad_weights, colors, {N, R, S - 1, 1}, "grad_weights");
  const auto opts = colors.options();
  auto gcol = colors_grad ? at::empty({N, R, S, C}, opts) : at::empty({0}, opts);
  auto gden = densities_grad ? at::empty({N, R, S, 1}, opts) : at::empty({0}, opts);
  auto gdep = depths_grad ? at::empty({N, R, S, 1}, opts) : at::empty({0}, opts);
  if (N * R == 0 || !(colors_grad || densities_grad || depths_grad)) return {gcol, gden, gdep};
  const auto col = colors.contiguous(), den = densities.contiguous(), z = depths.contiguous();
  auto bounds = depths_grad ? at::empty({N * R, 2}, opts) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "composite_rays_backward_cpu", [&] {
    using T = scalar_t;
    const auto d = dims_of<T>(colors);
    T lo, hi;
    depth_range(z.data_ptr<T>(), d.rays * d.S, lo, hi);
    auto ptr = [](const at::Tensor& t) -> T* { return t.defined() && t.numel() ? t.data_ptr<T>() : nullptr; };
    const Grads<T> g{ptr(gf), ptr(gz), ptr(gw), ptr(gcol), ptr(gden), ptr(gdep), ptr(bounds)};
    const T *cp = col.data_ptr<T>(), *dp = den.data_ptr<T>(), *zp = z.data_ptr<T>();
    at::parallel_for(0, d.rays, kGrain, [&](int64_t b, int64_t e) {
      backward_rays(cp, dp, zp, g, d, lo, hi, white_back, b, e);
    });
    if (depths_grad) add_bound_grads(g.gdep, zp, d.rays * d.S, lo, hi, g.bounds, d.rays);
  });
  return {gcol, gden, gdep};
}

}  // namespace

TORCH_LIBRARY_IMPL(nofa, CPU, m) {
  m.impl("composite_rays", &composite_rays_cpu);
  m.impl("composite_rays_backward", &composite_rays_backward_cpu);
}

}  // namespace nofa
