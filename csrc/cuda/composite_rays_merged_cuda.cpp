// composite_rays_merged on CUDA: checks, allocation and launches (host side).
//
// A merge kernel writes, per ray, the merged densities and depths [rays, S_a + S_b] and
// each merged sample's source row (ties: set a first, as on the CPU); the composite_rays
// kernels then run on that copy, reading colour rows of both sets in place (and writing
// their gradients in place), and the density / depth gradients are scattered back to the
// sets. Nothing of size [N, R, S, C] is concatenated or gathered. The depth clamp range
// and its gradient span both depth tensors, as the CPU kernel's do.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <utility>

#include "common/composite.h"
#include "composite_rays.h"
#include "composite_rays_merged.h"
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
  return {at::minimum(std::get<0>(ra), std::get<0>(rb)), at::maximum(std::get<1>(ra), std::get<1>(rb))};
}

struct Merged {
  at::Tensor den, z, src;  // [rays, S], [rays, S], int32 [rays, S]
};

Merged merge(const at::Tensor& da, const at::Tensor& za, const at::Tensor& db, const at::Tensor& zb,
             int64_t rays, int64_t Sa, int64_t Sb) {
  const int64_t S = Sa + Sb;
  Merged m{at::empty({rays, S}, da.options()), at::empty({rays, S}, da.options()),
           at::empty({rays, S}, da.options().dtype(at::kInt))};
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(da.scalar_type(), "composite_rays_merged_merge_cuda", [&] {
    using T = scalar_t;
    launch_merge_sets<T>(ptr_or_null<T>(da), ptr_or_null<T>(za), ptr_or_null<T>(db), ptr_or_null<T>(zb), rays,
                         Sa, Sb, m.den.data_ptr<T>(), m.z.data_ptr<T>(), m.src.data_ptr<int32_t>(), stream);
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
  check_composite_rays_merged(colors_a, densities_a, depths_a, colors_b, densities_b, depths_b);
  const c10::cuda::CUDAGuard guard(colors_a.device());
  const int64_t N = colors_a.size(0), R = colors_a.size(1), C = colors_a.size(3);
  const int64_t Sa = colors_a.size(2), Sb = colors_b.size(2), S = Sa + Sb, rays = N * R;
  const auto opts = colors_a.options();
  auto feat = at::empty({N, R, C}, opts);
  auto depth = at::empty({N, R, 1}, opts);
  auto weights = at::empty({N, R, S - 1, 1}, opts);
  if (rays == 0) return {feat, depth, weights};
  const auto ca = colors_a.contiguous(), da = densities_a.contiguous(), za = depths_a.contiguous();
  const auto cb = colors_b.contiguous(), db = densities_b.contiguous(), zb = depths_b.contiguous();
  const auto range = depth_range(za, zb);
  const auto m = merge(da, za, db, zb, rays, Sa, Sb);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(colors_a.scalar_type(), "composite_rays_merged_cuda", [&] {
    using T = scalar_t;
    const ColorRows<const T> rows{ptr_or_null<T>(ca), ptr_or_null<T>(cb), m.src.data_ptr<int32_t>(), Sa, Sb, C};
    launch_composite_rays_forward<T>(rows, m.den.data_ptr<T>(), m.z.data_ptr<T>(), range.first.data_ptr<T>(),
                                     range.second.data_ptr<T>(), ptr_or_null<T>(feat), depth.data_ptr<T>(),
                                     weights.data_ptr<T>(), rays, S, C, white_back, stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {feat, depth, weights};
}

Tensor6 composite_rays_merged_backward_cuda(
    const std::optional<at::Tensor>& grad_features, const std::optional<at::Tensor>& grad_depth,
    const std::optional<at::Tensor>& grad_weights, const at::Tensor& colors_a,
    const at::Tensor& densities_a, const at::Tensor& depths_a, const at::Tensor& colors_b,
    const at::Tensor& densities_b, const at::Tensor& depths_b, bool white_back, bool colors_grad,
    bool densities_grad, bool depths_grad) {
  check_composite_rays_merged(colors_a, densities_a, depths_a, colors_b, densities_b, depths_b);
  const c10::cuda::CUDAGuard guard(colors_a.device());
  const int64_t N = colors_a.size(0), R = colors_a.size(1), C = colors_a.size(3);
  const int64_t Sa = colors_a.size(2), Sb = colors_b.size(2), S = Sa + Sb, rays = N * R;
  // cotangent() checks shape and device (a CPU cotangent must not reach a kernel).
  const auto gf = cotangent(grad_features, colors_a, {N, R, C}, "grad_features");
  const auto gz = cotangent(grad_depth, colors_a, {N, R, 1}, "grad_depth");
  const auto gw = cotangent(grad_weights, colors_a, {N, R, S - 1, 1}, "grad_weights");
  const auto opts = colors_a.options();
  // Without a features cotangent the colour gradients are zero and no kernel writes them.
  auto colour_grad = [&](int64_t Sx) {
    return !colors_grad ? at::empty({0}, opts) : gf.defined() ? at::empty({N, R, Sx, C}, opts)
                                                               : at::zeros({N, R, Sx, C}, opts);
  };
  auto alloc = [&](bool need, int64_t Sx) { return need ? at::empty({N, R, Sx, 1}, opts) : at::empty({0}, opts); };
  auto gca = colour_grad(Sa), gcb = colour_grad(Sb);
  auto gda = alloc(densities_grad, Sa), gdb = alloc(densities_grad, Sb);
  auto gza = alloc(depths_grad, Sa), gzb = alloc(depths_grad, Sb);
  if (rays == 0 || !(colors_grad || densities_grad || depths_grad)) return {gca, gda, gza, gcb, gdb, gzb};
  const auto ca = colors_a.contiguous(), da = densities_a.contiguous(), za = depths_a.contiguous();
  const auto cb = colors_b.contiguous(), db = densities_b.contiguous(), zb = depths_b.contiguous();
  const auto range = depth_range(za, zb);
  const auto m = merge(da, za, db, zb, rays, Sa, Sb);
  // The ray kernel always writes merged density gradients (scattered only when asked for).
  auto gden = at::empty({rays, S}, opts);
  auto gdep = depths_grad ? at::empty({rays, S}, opts) : at::Tensor();
  auto scratch_e = gf.defined() ? at::empty({rays * S}, opts) : at::Tensor();
  auto scratch_w = at::empty({(S - 1) * kScratch * rays}, opts);
  auto bounds = depths_grad ? at::empty({rays, 2}, opts) : at::Tensor();
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(colors_a.scalar_type(), "composite_rays_merged_backward_cuda", [&] {
    using T = scalar_t;
    const int32_t* src = m.src.data_ptr<int32_t>();
    const ColorRows<const T> rows{ptr_or_null<T>(ca), ptr_or_null<T>(cb), src, Sa, Sb, C};
    const bool write_colours = colors_grad && gf.defined();
    const ColorRows<T> grad_rows{write_colours ? ptr_or_null<T>(gca) : nullptr,
                                 write_colours ? ptr_or_null<T>(gcb) : nullptr, src, Sa, Sb, C};
    launch_composite_rays_backward<T>(ptr_or_null<T>(gf), ptr_or_null<T>(gz), ptr_or_null<T>(gw), rows,
                                      m.den.data_ptr<T>(), m.z.data_ptr<T>(), range.first.data_ptr<T>(),
                                      range.second.data_ptr<T>(), ptr_or_null<T>(scratch_e),
                                      scratch_w.data_ptr<T>(), grad_rows, gden.data_ptr<T>(), ptr_or_null<T>(gdep),
                                      ptr_or_null<T>(bounds), rays, S, C, white_back, stream);
    if (densities_grad) {
      launch_scatter_sets<T>(gden.data_ptr<T>(), src, rays, Sa, Sb, ptr_or_null<T>(gda), ptr_or_null<T>(gdb),
                             stream);
    }
    if (depths_grad) {
      launch_scatter_sets<T>(gdep.data_ptr<T>(), src, rays, Sa, Sb, ptr_or_null<T>(gza), ptr_or_null<T>(gzb),
                             stream);
    }
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (depths_grad) {
    // The clamp range spans both sets: each bound's gradient is shared between the
    // elements of both depth tensors equal to it (common/composite.h bound_share).
    const auto& lo = range.first;
    const auto& hi = range.second;
    const auto totals = bounds.sum(0).contiguous();
    const auto counts = at::stack({za.eq(lo).sum() + zb.eq(lo).sum(), za.eq(hi).sum() + zb.eq(hi).sum()}).contiguous();
    AT_DISPATCH_FLOATING_TYPES(colors_a.scalar_type(), "composite_rays_merged_bound_grads_cuda", [&] {
      using T = scalar_t;
      launch_composite_bound_grads<T>(ptr_or_null<T>(za), ptr_or_null<T>(gza), za.numel(), lo.data_ptr<T>(),
                                      hi.data_ptr<T>(), totals.data_ptr<T>(), counts.data_ptr<int64_t>(), stream);
      launch_composite_bound_grads<T>(ptr_or_null<T>(zb), ptr_or_null<T>(gzb), zb.numel(), lo.data_ptr<T>(),
                                      hi.data_ptr<T>(), totals.data_ptr<T>(), counts.data_ptr<int64_t>(), stream);
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
