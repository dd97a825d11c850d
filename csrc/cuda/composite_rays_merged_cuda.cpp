// composite_rays_merged on CUDA: checks, allocation and launches (host side).
//
// A merge kernel writes, per ray, the merged densities and depths (sample-major
// [S_a + S_b, rays], read from sample-major copies of the sets, csrc/cuda/composite_rays_kernels.h
// "Layouts") and each merged sample's source row (ties: set a first, as on the CPU); the
// composite_rays kernels then run on that copy, reading colour rows of both sets in place
// (and writing their gradients in place), and the density / depth gradients are scattered
// back to the sets. Nothing of size [N, R, S, C] is concatenated or gathered. The depth
// clamp range and its gradient span both depth tensors, as the CPU kernel's do. Colours
// may be float16 / bfloat16 (autocast), as for composite_rays.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <utility>

#include "common/composite.h"
#include "composite_rays.h"
#include "composite_rays_merged.h"
#include "cuda/composite_rays_host.h"
#include "cuda/composite_rays_kernels.h"

namespace nofa {
namespace {

template <typename T>
T* ptr_or_null(const at::Tensor& t) {
  return t.defined() && t.numel() > 0 ? t.data_ptr<T>() : nullptr;
}

// min / max over both depth tensors (NaN if either holds a NaN, as torch.min / max).
std::pair<at::Tensor, at::Tensor> depth_range(const at::Tensor& za, const at::Tensor& zb) {
  if (za.numel() == 0) {
    auto r = at::aminmax(zb);
    return {std::get<0>(r), std::get<1>(r)};
  }
  if (zb.numel() == 0) {
    auto r = at::aminmax(za);
    return {std::get<0>(r), std::get<1>(r)};
  }
  auto ra = at::aminmax(za);
  auto rb = at::aminmax(zb);
  return {at::minimum(std::get<0>(ra), std::get<0>(rb)),
          at::maximum(std::get<1>(ra), std::get<1>(rb))};
}

struct Merged {
  at::Tensor den_t, z_t;  // sample-major [S, rays]
  at::Tensor src;         // int32 [rays, S]
};

// densities / depths of the sets: [N, R, S_a, 1] / [N, R, S_b, 1], any layout.
Merged merge(const at::Tensor& da, const at::Tensor& za, const at::Tensor& db, const at::Tensor& zb,
             int64_t rays, int64_t Sa, int64_t Sb) {
  const int64_t S = Sa + Sb;
  Merged m{at::empty({S, rays}, da.options()), at::empty({S, rays}, da.options()),
           at::empty({rays, S}, da.options().dtype(at::kInt))};
  const auto da_t = sample_major(da, rays, Sa), za_t = sample_major(za, rays, Sa);
  const auto db_t = sample_major(db, rays, Sb), zb_t = sample_major(zb, rays, Sb);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(da.scalar_type(), "composite_rays_merged_merge_cuda", [&] {
    using T = scalar_t;
    launch_merge_sets<T>(ptr_or_null<T>(da_t), ptr_or_null<T>(za_t), ptr_or_null<T>(db_t),
                         ptr_or_null<T>(zb_t), rays, Sa, Sb, m.den_t.data_ptr<T>(),
                         m.z_t.data_ptr<T>(), m.src.data_ptr<int32_t>(), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return m;
}

using Tensor3 = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using Tensor6 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

Tensor3 composite_rays_merged_cuda(const at::Tensor& colors_a, const at::Tensor& densities_a,
                                   const at::Tensor& depths_a, const at::Tensor& colors_b,
                                   const at::Tensor& densities_b, const at::Tensor& depths_b,
                                   bool white_back) {
  check_composite_rays_merged(colors_a, densities_a, depths_a, colors_b, densities_b, depths_b,
                              /*half_colors=*/true);
  const c10::cuda::CUDAGuard guard(colors_a.device());
  const int64_t N = colors_a.size(0), R = colors_a.size(1), C = colors_a.size(3);
  const int64_t Sa = colors_a.size(2), Sb = colors_b.size(2), S = Sa + Sb, rays = N * R, K = S - 1;
  // The outputs have the densities' dtype (float32 with half colours).
  const auto opts = densities_a.options();
  auto feat = at::empty({N, R, C}, opts);
  auto depth = at::empty({N, R, 1}, opts);
  if (rays == 0) return {feat, depth, at::empty({N, R, K, 1}, opts)};
  const auto ca = colors_a.contiguous(), cb = colors_b.contiguous();
  const auto range = depth_range(depths_a, depths_b);
  const auto m = merge(densities_a, depths_a, densities_b, depths_b, rays, Sa, Sb);
  auto weights_t = at::empty({K, rays}, opts);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  dispatch_colour_types(
      colors_a.scalar_type(), "composite_rays_merged_cuda", [&]<typename T, typename P>() {
        const ColorRows<const P> rows{
            data_as<const P>(ca), data_as<const P>(cb), m.src.data_ptr<int32_t>(), Sa, Sb, C};
        launch_composite_rays_forward<T, P>(
            rows, m.den_t.data_ptr<T>(), m.z_t.data_ptr<T>(), range.first.data_ptr<T>(),
            range.second.data_ptr<T>(), data_as<T>(feat), depth.data_ptr<T>(),
            weights_t.data_ptr<T>(), rays, S, C, white_back, stream);
      });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {feat, depth, ray_major(weights_t).view({N, R, K, 1})};
}

Tensor6 composite_rays_merged_backward_cuda(
    const std::optional<at::Tensor>& grad_features, const std::optional<at::Tensor>& grad_depth,
    const std::optional<at::Tensor>& grad_weights, const at::Tensor& colors_a,
    const at::Tensor& densities_a, const at::Tensor& depths_a, const at::Tensor& colors_b,
    const at::Tensor& densities_b, const at::Tensor& depths_b, bool white_back, bool colors_grad,
    bool densities_grad, bool depths_grad) {
  check_composite_rays_merged(colors_a, densities_a, depths_a, colors_b, densities_b, depths_b,
                              /*half_colors=*/true);
  const c10::cuda::CUDAGuard guard(colors_a.device());
  const int64_t N = colors_a.size(0), R = colors_a.size(1), C = colors_a.size(3);
  const int64_t Sa = colors_a.size(2), Sb = colors_b.size(2), S = Sa + Sb, rays = N * R, K = S - 1;
  // cotangent() checks shape and device (a CPU cotangent must not reach a kernel); the
  // cotangents are in the outputs' dtype (the densities'), the colour gradients in the colours'.
  const auto gf = cotangent(grad_features, densities_a, {N, R, C}, "grad_features");
  const auto gz = cotangent(grad_depth, densities_a, {N, R, 1}, "grad_depth");
  const auto gw = cotangent(grad_weights, densities_a, {N, R, K, 1}, "grad_weights");
  const auto opts = densities_a.options(), copts = colors_a.options();
  // Without a features cotangent the colour gradients are zero and no kernel writes them.
  auto colour_grad = [&](int64_t Sx) {
    return !colors_grad   ? at::empty({0}, copts)
           : gf.defined() ? at::empty({N, R, Sx, C}, copts)
                          : at::zeros({N, R, Sx, C}, copts);
  };
  auto alloc = [&](bool need, int64_t Sx) {
    return need ? at::empty({N, R, Sx, 1}, opts) : at::empty({0}, opts);
  };
  auto gca = colour_grad(Sa), gcb = colour_grad(Sb);
  auto gda = alloc(densities_grad, Sa), gdb = alloc(densities_grad, Sb);
  auto gza = alloc(depths_grad, Sa), gzb = alloc(depths_grad, Sb);
  if (rays == 0 || !(colors_grad || densities_grad || depths_grad))
    return {gca, gda, gza, gcb, gdb, gzb};
  const auto ca = colors_a.contiguous(), za = depths_a.contiguous();
  const auto cb = colors_b.contiguous(), zb = depths_b.contiguous();
  const auto range = depth_range(za, zb);
  const auto m = merge(densities_a, za, densities_b, zb, rays, Sa, Sb);
  const auto gw_t = gw.defined() ? sample_major(gw, rays, K) : at::Tensor();
  // 2 * sum_c grad_features[r, c]: the white background's share of every weight cotangent.
  const auto gf_sum = gf.defined() && white_back ? gf.view({rays, C}).sum(1).mul_(2) : at::Tensor();
  // The ray kernel always writes merged density gradients (scattered only when asked for).
  auto gden_t = at::empty({S, rays}, opts);
  auto gdep_t = depths_grad ? at::empty({S, rays}, opts) : at::Tensor();
  auto scratch_e_t = gf.defined() ? at::empty({S, rays}, opts) : at::Tensor();
  auto scratch_w = at::empty({K * kScratch * rays}, opts);
  auto bounds = depths_grad ? at::empty({2, rays}, opts) : at::Tensor();
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const int32_t* src = m.src.data_ptr<int32_t>();
  dispatch_colour_types(
      colors_a.scalar_type(), "composite_rays_merged_backward_cuda", [&]<typename T, typename P>() {
        const ColorRows<const P> rows{data_as<const P>(ca), data_as<const P>(cb), src, Sa, Sb, C};
        const bool write_colours = colors_grad && gf.defined();
        const ColorRows<P> grad_rows{write_colours ? data_as<P>(gca) : nullptr,
                                     write_colours ? data_as<P>(gcb) : nullptr,
                                     src,
                                     Sa,
                                     Sb,
                                     C};
        launch_composite_rays_backward<T, P>(
            data_as<T>(gf), data_as<T>(gf_sum), data_as<T>(gz), data_as<T>(gw_t), rows,
            m.den_t.data_ptr<T>(), m.z_t.data_ptr<T>(), range.first.data_ptr<T>(),
            range.second.data_ptr<T>(), data_as<T>(scratch_e_t), scratch_w.data_ptr<T>(), grad_rows,
            gden_t.data_ptr<T>(), data_as<T>(gdep_t), data_as<T>(bounds), rays, S, C, white_back,
            stream);
      });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  // Merged-order gradients back to [rays, S] rows, then to the sets' rows.
  AT_DISPATCH_FLOATING_TYPES(densities_a.scalar_type(), "composite_rays_merged_scatter_cuda", [&] {
    using T = scalar_t;
    if (densities_grad) {
      const auto gden = ray_major(gden_t);
      launch_scatter_sets<T>(gden.data_ptr<T>(), src, rays, Sa, Sb, ptr_or_null<T>(gda),
                             ptr_or_null<T>(gdb), stream);
    }
    if (depths_grad) {
      const auto gdep = ray_major(gdep_t);
      launch_scatter_sets<T>(gdep.data_ptr<T>(), src, rays, Sa, Sb, ptr_or_null<T>(gza),
                             ptr_or_null<T>(gzb), stream);
    }
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (depths_grad) {
    // The clamp range spans both sets: each bound's gradient is shared between the
    // elements of both depth tensors equal to it (common/composite.h bound_share).
    const auto& lo = range.first;
    const auto& hi = range.second;
    const auto totals = bounds.sum(1).contiguous();
    const auto counts =
        at::stack({za.eq(lo).sum() + zb.eq(lo).sum(), za.eq(hi).sum() + zb.eq(hi).sum()})
            .contiguous();
    AT_DISPATCH_FLOATING_TYPES(
        densities_a.scalar_type(), "composite_rays_merged_bound_grads_cuda", [&] {
          using T = scalar_t;
          launch_composite_bound_grads<T>(ptr_or_null<T>(za), ptr_or_null<T>(gza), za.numel(),
                                          lo.data_ptr<T>(), hi.data_ptr<T>(), totals.data_ptr<T>(),
                                          counts.data_ptr<int64_t>(), stream);
          launch_composite_bound_grads<T>(ptr_or_null<T>(zb), ptr_or_null<T>(gzb), zb.numel(),
                                          lo.data_ptr<T>(), hi.data_ptr<T>(), totals.data_ptr<T>(),
                                          counts.data_ptr<int64_t>(), stream);
        });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {gca, gda, gza, gcb, gdb, gzb};
}

}  // namespace

TORCH_LIBRARY_IMPL(nofa, CUDA, m) {
  m.impl("composite_rays_merged", &composite_rays_merged_cuda);
  m.impl("composite_rays_merged_backward", &composite_rays_merged_backward_cuda);
}

}  // namespace nofa
