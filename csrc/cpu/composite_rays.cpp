// composite_rays on the CPU: forward and backward, parallel over rays.
//
// Each ray is independent, so each thread owns whole rays: no atomics, deterministic.
// The per-ray work is in cpu/composite_rays_cpu.h (shared with composite_rays_merged).
// Nothing of size [N, R, S, C] is allocated besides the colour gradient itself.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "composite_rays.h"
#include "cpu/composite_rays_cpu.h"

namespace nofa {
namespace {

[[maybe_unused]] const bool kImplemented = implement_intervals(isa::Op::kCompositeRays);

constexpr int64_t kGrain = 16;  // rays per task: a ray is ~S*C multiply-adds

template <typename T>
struct Dims {
  int64_t rays, S, C, K;
  isa::Isa tier;  // fill_intervals_cpu's instruction-set tier
};

template <typename T>
void forward_rays(const T* col, const T* den, const T* z, T* feat, T* depth, T* w, const Dims<T>& d,
                  T lo, T hi, bool white, int64_t begin, int64_t end) {
  RayScratch<T> sc(d.S, d.C);
  const ContiguousRows rows{d.C};
  for (int64_t r = begin; r < end; ++r) {
    const T* cr = col + r * d.S * d.C;
    depth[r] = forward_ray(den + r * d.S, z + r * d.S, d.K, d.C, rows, cr, cr, w + r * d.K,
                           feat + r * d.C, lo, hi, white, d.tier, sc);
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
  RayScratch<T> sc(d.S, d.C);
  std::vector<T> gden_scratch(d.S);
  const ContiguousRows rows{d.C};
  for (int64_t r = begin; r < end; ++r) {
    const T* cr = col + r * d.S * d.C;
    const RayGrads<T> rg{g.gf ? g.gf + r * d.C : nullptr, g.gz ? g.gz[r] : T(0),
                         g.gw ? g.gw + r * d.K : nullptr};
    T* gc = g.gcol ? g.gcol + r * d.S * d.C : nullptr;
    T glo, ghi;
    backward_ray(den + r * d.S, z + r * d.S, d.K, d.C, rows, cr, cr, rg, lo, hi, white, d.tier, sc,
                 g.gden ? g.gden + r * d.S : gden_scratch.data(),
                 g.gdep ? g.gdep + r * d.S : nullptr, gc, gc, glo, ghi);
    if (g.bounds) {
      g.bounds[2 * r] = glo;
      g.bounds[2 * r + 1] = ghi;
    }
  }
}

template <typename T>
void depth_range(const T* z, int64_t n, T& lo, T& hi) {
  lo = hi = z[0];
  fold_depth_range(z, n, lo, hi);
}

template <typename T>
Dims<T> dims_of(const at::Tensor& colors) {
  const int64_t S = colors.size(2);
  return Dims<T>{colors.size(0) * colors.size(1), S, colors.size(3), S - 1,
                 intervals_path<T>(isa::Op::kCompositeRays)};
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
    const scalar_t *cp = col.data_ptr<scalar_t>(), *dp = den.data_ptr<scalar_t>(),
                   *zp = z.data_ptr<scalar_t>();
    scalar_t lo, hi;
    depth_range(zp, d.rays * d.S, lo, hi);
    scalar_t *fp = feat.data_ptr<scalar_t>(), *op = depth.data_ptr<scalar_t>(),
             *wp = weights.data_ptr<scalar_t>();
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
    auto ptr = [](const at::Tensor& t) -> T* {
      return t.defined() && t.numel() ? t.data_ptr<T>() : nullptr;
    };
    const Grads<T> g{ptr(gf), ptr(gz), ptr(gw), ptr(gcol), ptr(gden), ptr(gdep), ptr(bounds)};
    const T *cp = col.data_ptr<T>(), *dp = den.data_ptr<T>(), *zp = z.data_ptr<T>();
    at::parallel_for(0, d.rays, kGrain, [&](int64_t b, int64_t e) {
      backward_rays(cp, dp, zp, g, d, lo, hi, white_back, b, e);
    });
    if (depths_grad) {
      T tlo, thi;
      total_bound_grads(g.bounds, d.rays, tlo, thi);
      add_bound_grads_cpu<T>({{g.gdep, zp, d.rays * d.S}}, lo, hi, tlo, thi);
    }
  });
  return {gcol, gden, gdep};
}

}  // namespace

TORCH_LIBRARY_IMPL(nofa, CPU, m) {
  m.impl("composite_rays", &composite_rays_cpu);
  m.impl("composite_rays_backward", &composite_rays_backward_cpu);
}

}  // namespace nofa
