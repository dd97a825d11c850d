// decode_triplane on CUDA: checks, allocation and the fused forward launch; the backward
// recomputes the tile-free forward with ATen GEMMs (features via the sample_triplane CUDA
// kernel) and hands the feature gradient to the sample_triplane CUDA backward.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/decode_triplane_kernels.h"
#include "decode_triplane.h"

namespace nofa {
namespace {

std::tuple<at::Tensor, at::Tensor> decode_triplane_cuda(const at::Tensor& planes, const at::Tensor& points,
                                                        double box_warp, const at::Tensor& fc0_weight,
                                                        const at::Tensor& fc0_bias, const at::Tensor& fc1_weight,
                                                        const at::Tensor& fc1_bias) {
  check_decode_triplane(planes, points, box_warp, fc0_weight, fc0_bias, fc1_weight, fc1_bias);
  const c10::cuda::CUDAGuard guard(planes.device());
  const int64_t N = planes.size(0), M = points.size(1), C = planes.size(2);
  const int64_t Hd = fc0_weight.size(0), O = fc1_weight.size(0);
  auto density = at::empty({N, M, 1}, planes.options());
  auto features = at::empty({N, M, O - 1}, planes.options());
  if (N * M == 0) return {density, features};
  TORCH_CHECK(decode_triplane_tile(C, Hd, planes.element_size()) >= 1, "nofa: decode_triplane on CUDA "
              "supports C + hidden up to the 48 KiB shared memory of one block, got C = ", C, ", hidden = ", Hd);
  const auto pcl = planes.permute({0, 1, 3, 4, 2}).contiguous();
  const auto pts = points.contiguous();
  const auto w0 = fc0_weight.contiguous(), b0 = fc0_bias.contiguous();
  const auto w1 = fc1_weight.contiguous(), b1 = fc1_bias.contiguous();
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(planes.scalar_type(), "decode_triplane_cuda", [&] {
    launch_decode_triplane_forward<scalar_t>(
        pcl.data_ptr<scalar_t>(), pts.data_ptr<scalar_t>(), w0.data_ptr<scalar_t>(), b0.data_ptr<scalar_t>(),
        w1.data_ptr<scalar_t>(), b1.data_ptr<scalar_t>(), density.data_ptr<scalar_t>(),
        features.data_ptr<scalar_t>(), N, M, C, planes.size(3), planes.size(4), Hd, O,
        static_cast<scalar_t>(2.0 / box_warp), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {density, features};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> decode_triplane_backward_cuda(
    const at::Tensor& grad_density, const at::Tensor& grad_features,
    const c10::optional<at::Tensor>& /*features: the CUDA backward recomputes them*/, const at::Tensor& planes,
    const at::Tensor& points, double box_warp, const at::Tensor& fc0_weight, const at::Tensor& fc0_bias,
    const at::Tensor& fc1_weight, const at::Tensor& fc1_bias, bool planes_grad, bool points_grad) {
  check_decode_triplane(planes, points, box_warp, fc0_weight, fc0_bias, fc1_weight, fc1_bias);
  const c10::cuda::CUDAGuard guard(planes.device());
  const int64_t N = planes.size(0), M = points.size(1), C = planes.size(2), F = fc1_weight.size(0) - 1;
  TORCH_CHECK(grad_density.numel() == N * M && grad_features.numel() == N * M * F,
              "nofa: grad_density / grad_features must have shapes [", N, ", ", M, ", 1] / [", N, ", ", M,
              ", ", F, "], got ", shape_str(grad_density), " and ", shape_str(grad_features));
  static const auto st_forward =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("nofa::sample_triplane", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double, c10::string_view)>();
  static const auto st_backward =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("nofa::sample_triplane_backward", "")
          .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                    double, c10::string_view, bool, bool)>();
  const auto w0 = fc0_weight.detach(), b0 = fc0_bias.detach();
  const auto w1 = fc1_weight.detach(), b1 = fc1_bias.detach();
  const auto f = st_forward.call(planes.detach(), points.detach(), box_warp, "mean").reshape({N * M, C});
  const auto z = at::addmm(b0, f, w0.t());
  const auto h = at::softplus(z, 1, 20);
  const auto x = at::addmm(b1, h, w1.t());
  const auto gd = grad_density.reshape({N * M, 1}).to(planes.scalar_type());
  const auto gf = grad_features.reshape({N * M, F}).to(planes.scalar_type());
  const auto gx = at::cat({gd, at::sigmoid_backward(gf * (1 + 2 * 0.001), at::sigmoid(x.narrow(1, 1, F)))}, 1);
  const auto gz = at::softplus_backward(at::mm(gx, w1), z, 1, 20);
  const auto gfeat = at::mm(gz, w0).reshape({N, M, C});
  auto [gplanes, gpoints] = st_backward.call(gfeat, planes, points, box_warp, "mean", planes_grad, points_grad);
  return {gplanes, gpoints, at::mm(gz.t(), f), gz.sum(0), at::mm(gx.t(), h), gx.sum(0)};
}

}  // namespace

TORCH_LIBRARY_IMPL(nofa, CUDA, m) {
  m.impl("decode_triplane", &decode_triplane_cuda);
  m.impl("decode_triplane_backward", &decode_triplane_backward_cuda);
}

}  // namespace nofa
