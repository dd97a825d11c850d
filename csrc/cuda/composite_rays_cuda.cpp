// composite_rays on CUDA: argument checks, allocation, the sample-major copies the kernels
// read (csrc/cuda/composite_rays_kernels.h, "Layouts") and the launches (host side).
// The depth clamp range is reduced on the device and read there, so no host sync.
// Colours may be float16 / bfloat16 (torch.autocast("cuda"), csrc/cuda/autocast_cuda.cpp)
// with float32 densities and depths: the outputs are then float32 and the colour gradient
// is in the colours' type.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "common/composite.h"
#include "composite_rays.h"
#include "cuda/composite_rays_host.h"
#include "cuda/composite_rays_kernels.h"

namespace nofa {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> composite_rays_cuda(const at::Tensor& colors,
                                                                   const at::Tensor& densities,
                                                                   const at::Tensor& depths,
                                                                   bool white_back) {
  check_composite_rays(colors, densities, depths, /*half_colors=*/true);
  const c10::cuda::CUDAGuard guard(colors.device());
  const int64_t N = colors.size(0), R = colors.size(1), S = colors.size(2), C = colors.size(3);
  const int64_t rays = N * R, K = S - 1;
  // The outputs have the densities' dtype (float32 with half colours).
  const auto opts = densities.options();
  auto feat = at::empty({N, R, C}, opts);
  auto depth = at::empty({N, R, 1}, opts);
  if (rays == 0) return {feat, depth, at::empty({N, R, K, 1}, opts)};
  const auto col = colors.contiguous();
  const auto den_t = sample_major(densities, rays, S), z_t = sample_major(depths, rays, S);
  const auto range = at::aminmax(z_t);
  auto weights_t = at::empty({K, rays}, opts);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  dispatch_colour_types(colors.scalar_type(), "composite_rays_cuda", [&]<typename T, typename P>() {
    const ColorRows<const P> rows{data_as<const P>(col), nullptr, nullptr, S, 0, C};
    launch_composite_rays_forward<T, P>(
        rows, den_t.data_ptr<T>(), z_t.data_ptr<T>(), std::get<0>(range).data_ptr<T>(),
        std::get<1>(range).data_ptr<T>(), data_as<T>(feat), depth.data_ptr<T>(),
        weights_t.data_ptr<T>(), rays, S, C, white_back, stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {feat, depth, ray_major(weights_t).view({N, R, K, 1})};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> composite_rays_backward_cuda(
    const std::optional<at::Tensor>& grad_features, const std::optional<at::Tensor>& grad_depth,
    const std::optional<at::Tensor>& grad_weights, const at::Tensor& colors,
    const at::Tensor& densities, const at::Tensor& depths, bool white_back, bool colors_grad,
    bool densities_grad, bool depths_grad) {
  check_composite_rays(colors, densities, depths, /*half_colors=*/true);
  const c10::cuda::CUDAGuard guard(colors.device());
  const int64_t N = colors.size(0), R = colors.size(1), S = colors.size(2), C = colors.size(3);
  const int64_t rays = N * R, K = S - 1;
  // Cotangents in the outputs' dtype (the densities'); the colour gradient in the colours'.
  const auto gf = cotangent(grad_features, densities, {N, R, C}, "grad_features");
  const auto gz = cotangent(grad_depth, densities, {N, R, 1}, "grad_depth");
  const auto gw = cotangent(grad_weights, densities, {N, R, K, 1}, "grad_weights");
  const auto opts = densities.options(), copts = colors.options();
  // Without a features cotangent the colour gradient is zero and no kernel writes it.
  auto gcol = !colors_grad   ? at::empty({0}, copts)
              : gf.defined() ? at::empty({N, R, S, C}, copts)
                             : at::zeros({N, R, S, C}, copts);
  if (rays == 0 || !(colors_grad || densities_grad || depths_grad)) {
    return {gcol, densities_grad ? at::empty({N, R, S, 1}, opts) : at::empty({0}, opts),
            depths_grad ? at::empty({N, R, S, 1}, opts) : at::empty({0}, opts)};
  }
  const auto col = colors.contiguous();
  const auto den_t = sample_major(densities, rays, S), z_t = sample_major(depths, rays, S);
  const auto gw_t = gw.defined() ? sample_major(gw, rays, K) : at::Tensor();
  // 2 * sum_c grad_features[r, c]: the white background's share of every weight cotangent.
  const auto gf_sum = gf.defined() && white_back ? gf.view({rays, C}).sum(1).mul_(2) : at::Tensor();
  const auto range = at::aminmax(z_t);
  // The ray kernel always writes density gradients; they are dropped when not asked for.
  auto gden_t = at::empty({S, rays}, opts);
  auto gdep_t = depths_grad ? at::empty({S, rays}, opts) : at::Tensor();
  auto scratch_e_t = gf.defined() ? at::empty({S, rays}, opts) : at::Tensor();
  auto scratch_w = at::empty({K * kScratch * rays}, opts);
  auto bounds = depths_grad ? at::empty({2, rays}, opts) : at::Tensor();
  const auto stream = c10::cuda::getCurrentCUDAStream();
  dispatch_colour_types(
      colors.scalar_type(), "composite_rays_backward_cuda", [&]<typename T, typename P>() {
        const ColorRows<const P> rows{data_as<const P>(col), nullptr, nullptr, S, 0, C};
        const ColorRows<P> grad_rows{
            colors_grad && gf.defined() ? data_as<P>(gcol) : nullptr, nullptr, nullptr, S, 0, C};
        launch_composite_rays_backward<T, P>(
            data_as<T>(gf), data_as<T>(gf_sum), data_as<T>(gz), data_as<T>(gw_t), rows,
            den_t.data_ptr<T>(), z_t.data_ptr<T>(), std::get<0>(range).data_ptr<T>(),
            std::get<1>(range).data_ptr<T>(), data_as<T>(scratch_e_t), scratch_w.data_ptr<T>(),
            grad_rows, gden_t.data_ptr<T>(), data_as<T>(gdep_t), data_as<T>(bounds), rays, S, C,
            white_back, stream);
      });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (depths_grad) {
    // The clamp bounds' gradients, on the sample-major copies (elementwise: any layout).
    const auto& lo = std::get<0>(range);
    const auto& hi = std::get<1>(range);
    const auto totals = bounds.sum(1).contiguous();
    const auto counts = at::stack({z_t.eq(lo).sum(), z_t.eq(hi).sum()}).contiguous();
    AT_DISPATCH_FLOATING_TYPES(densities.scalar_type(), "composite_rays_bound_grads_cuda", [&] {
      using T = scalar_t;
      launch_composite_bound_grads<T>(z_t.data_ptr<T>(), gdep_t.data_ptr<T>(), z_t.numel(),
                                      lo.data_ptr<T>(), hi.data_ptr<T>(), totals.data_ptr<T>(),
                                      counts.data_ptr<int64_t>(), stream);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {gcol, densities_grad ? ray_major(gden_t).view({N, R, S, 1}) : at::empty({0}, opts),
          depths_grad ? ray_major(gdep_t).view({N, R, S, 1}) : at::empty({0}, opts)};
}

}  // namespace

TORCH_LIBRARY_IMPL(nofa, CUDA, m) {
  m.impl("composite_rays", &composite_rays_cuda);
  m.impl("composite_rays_backward", &composite_rays_backward_cuda);
}

}  // namespace nofa
