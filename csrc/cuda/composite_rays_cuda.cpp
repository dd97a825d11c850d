// composite_rays on CUDA: argument checks, allocation, and the launches (host side).
// The depth clamp range is reduced on the device and read there, so no host sync.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "common/composite.h"
#include "composite_rays.h"
#include "cuda/composite_rays_kernels.h"

namespace nofa {
namespace {

template <typename T>
T* ptr_or_null(const at::Tensor& t) {
  return t.defined() && t.numel() > 0 ? t.data_ptr<T>() : nullptr;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> composite_rays_cuda(const at::Tensor& colors,
                                                                   const at::Tensor& densities,
                                                                   const at::Tensor& depths,
                                                                   bool white_back) {
  check_composite_rays(colors, densities, depths);
  const c10::cuda::CUDAGuard guard(colors.device());
  const int64_t N = colors.size(0), R = colors.size(1), S = colors.size(2), C = colors.size(3);
  auto feat = at::empty({N, R, C}, colors.options());
  auto depth = at::empty({N, R, 1}, colors.options());
  auto weights = at::empty({N, R, S - 1, 1}, colors.options());
  if (N * R == 0) return {feat, depth, weights};
  const auto col = colors.contiguous(), den = densities.contiguous(), z = depths.contiguous();
  const auto range = at::aminmax(z);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "composite_rays_cuda", [&] {
    const ColorRows<const scalar_t> rows{col.data_ptr<scalar_t>(), nullptr, nullptr, S, 0, C};
    launch_composite_rays_forward<scalar_t>(
        rows, den.data_ptr<scalar_t>(), z.data_ptr<scalar_t>(),
        std::get<0>(range).data_ptr<scalar_t>(), std::get<1>(range).data_ptr<scalar_t>(),
        feat.data_ptr<scalar_t>(), depth.data_ptr<scalar_t>(), weights.data_ptr<scalar_t>(), N * R,
        S, C, white_back, stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {feat, depth, weights};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> composite_rays_backward_cuda(
    const std::optional<at::Tensor>& grad_features, const std::optional<at::Tensor>& grad_depth,
    const std::optional<at::Tensor>& grad_weights, const at::Tensor& colors,
    const at::Tensor& densities, const at::Tensor& depths, bool white_back, bool colors_grad,
    bool densities_grad, bool depths_grad) {
  check_composite_rays(colors, densities, depths);
  const c10::cuda::CUDAGuard guard(colors.device());
  const int64_t N = colors.size(0), R = colors.size(1), S = colors.size(2), C = colors.size(3);
  const auto gf = cotangent(grad_features, colors, {N, R, C}, "grad_features");
  const auto gz = cotangent(grad_depth, colors, {N, R, 1}, "grad_depth");
  const auto gw = cotangent(grad_weights, colors, {N, R, S - 1, 1}, "grad_weights");
  const auto opts = colors.options();
  // Without a features cotangent the colour gradient is zero and no kernel writes it.
  auto gcol = !colors_grad ? at::empty({0}, opts)
              : gf.defined() ? at::empty({N, R, S, C}, opts) : at::zeros({N, R, S, C}, opts);
  // The ray kernel always writes density gradients; they are dropped when not asked for.
  auto gden = at::empty({N, R, S, 1}, opts);
  auto gdep = depths_grad ? at::empty({N, R, S, 1}, opts) : at::empty({0}, opts);
  if (N * R == 0 || !(colors_grad || densities_grad || depths_grad)) {
    return {gcol, densities_grad ? gden : at::empty({0}, opts), gdep};
  }
  const auto col = colors.contiguous(), den = densities.contiguous(), z = depths.contiguous();
  const auto range = at::aminmax(z);
  auto scratch_e = gf.defined() ? at::empty({N * R * S}, opts) : at::Tensor();
  auto scratch_w = at::empty({(S - 1) * kScratch * N * R}, opts);
  auto bounds = depths_grad ? at::empty({N * R, 2}, opts) : at::Tensor();
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "composite_rays_backward_cuda", [&] {
    using T = scalar_t;
    const ColorRows<const T> rows{col.data_ptr<T>(), nullptr, nullptr, S, 0, C};
    const ColorRows<T> grad_rows{colors_grad && gf.defined() ? gcol.data_ptr<T>() : nullptr, nullptr,
                                 nullptr, S, 0, C};
    launch_composite_rays_backward<T>(
        ptr_or_null<T>(gf), ptr_or_null<T>(gz), ptr_or_null<T>(gw), rows,
        den.data_ptr<T>(), z.data_ptr<T>(), std::get<0>(range).data_ptr<T>(),
        std::get<1>(range).data_ptr<T>(), ptr_or_null<T>(scratch_e), scratch_w.data_ptr<T>(),
        grad_rows, gden.data_ptr<T>(),
        ptr_or_null<T>(gdep), ptr_or_null<T>(bounds), N * R, S, C, white_back, stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (depths_grad) {
    const auto& lo = std::get<0>(range);
    const auto& hi = std::get<1>(range);
    const auto totals = bounds.sum(0).contiguous();
    const auto counts = at::stack({z.eq(lo).sum(), z.eq(hi).sum()}).contiguous();
    AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "composite_rays_bound_grads_cuda", [&] {
      using T = scalar_t;
      launch_composite_bound_grads<T>(z.data_ptr<T>(), gdep.data_ptr<T>(), z.numel(), lo.data_ptr<T>(),
                                      hi.data_ptr<T>(), totals.data_ptr<T>(), counts.data_ptr<int64_t>(),
                                      stream);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {gcol, densities_grad ? gden : at::empty({0}, opts), gdep};
}

}  // namespace

TORCH_LIBRARY_IMPL(nofa, CUDA, m) {
  m.impl("composite_rays", &composite_rays_cuda);
  m.impl("composite_rays_backward", &composite_rays_backward_cuda);
}

}  // namespace nofa
