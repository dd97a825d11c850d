// decode_triplane on CUDA: checks, allocation and the fused forward launch. The backward
// recomputes the forward with ATen GEMMs (features from the sample_triplane CUDA kernel,
// called directly, not through the dispatcher) and hands the feature gradient to the
// sample_triplane CUDA backward only when a plane or point gradient is asked for.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/decode_triplane_kernels.h"
#include "cuda/sample_triplane_cuda.h"
#include "cuda/sample_triplane_kernels.h"
#include "decode_triplane.h"

namespace nofa {
namespace {

// Zero widths would leave nothing to decode and divide by zero in the tile arithmetic.
void check_widths(const at::Tensor& planes, const at::Tensor& fc0_weight) {
  TORCH_CHECK(planes.size(2) > 0, "nofa: planes must have C >= 1 channels ([N, 3, C, H, W]), got ",
              shape_str(planes));
  TORCH_CHECK(fc0_weight.size(0) > 0, "nofa: fc0_weight must have shape [hidden, C] with hidden >= 1, got ",
              shape_str(fc0_weight));
}

std::tuple<at::Tensor, at::Tensor> decode_triplane_cuda(const at::Tensor& planes, const at::Tensor& points,
                                                        double box_warp, const at::Tensor& fc0_weight,
                                                        const at::Tensor& fc0_bias, const at::Tensor& fc1_weight,
                                                        const at::Tensor& fc1_bias) {
  check_decode_triplane(planes, points, box_warp, fc0_weight, fc0_bias, fc1_weight, fc1_bias);
  check_widths(planes, fc0_weight);
  const c10::cuda::CUDAGuard guard(planes.device());
  const int64_t N = planes.size(0), M = points.size(1), C = planes.size(2);
  const int64_t H = planes.size(3), W = planes.size(4);
  const int64_t Hd = fc0_weight.size(0), O = fc1_weight.size(0);
  auto density = at::empty({N, M, 1}, planes.options());
  auto features = at::empty({N, M, O - 1}, planes.options());
  if (N * M == 0) return {density, features};
  const bool fast = decode_triplane_fast_path(C, Hd, O, H, W, planes.element_size());
  TORCH_CHECK(fast || decode_triplane_tile(C, Hd, planes.element_size()) >= 1, "nofa: decode_triplane on CUDA "
              "supports C + hidden up to the 48 KiB shared memory of one block, got C = ", C, ", hidden = ", Hd);
  // A no-op for planes already stored channels-last (the renderer relayouts once per render).
  const auto pcl = planes.permute({0, 1, 3, 4, 2}).contiguous();
  const auto pts = points.contiguous();
  // The general kernel reads the weights transposed (neighbouring threads: neighbouring
  // units); the fast one copies them to shared memory as they are.
  const auto w0 = fast ? fc0_weight.contiguous() : fc0_weight.t().contiguous();
  const auto w1 = fast ? fc1_weight.contiguous() : fc1_weight.t().contiguous();
  const auto b0 = fc0_bias.contiguous(), b1 = fc1_bias.contiguous();
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(planes.scalar_type(), "decode_triplane_cuda", [&] {
    launch_decode_triplane_forward<scalar_t>(
        pcl.data_ptr<scalar_t>(), pts.data_ptr<scalar_t>(), w0.data_ptr<scalar_t>(), b0.data_ptr<scalar_t>(),
        w1.data_ptr<scalar_t>(), b1.data_ptr<scalar_t>(), density.data_ptr<scalar_t>(),
        features.data_ptr<scalar_t>(), N, M, C, H, W, Hd, O, static_cast<scalar_t>(2.0 / box_warp), fast,
        stream);
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
  check_widths(planes, fc0_weight);
  const c10::cuda::CUDAGuard guard(planes.device());
  const int64_t N = planes.size(0), M = points.size(1), C = planes.size(2), F = fc1_weight.size(0) - 1;
  TORCH_CHECK(grad_density.numel() == N * M && grad_features.numel() == N * M * F,
              "nofa: grad_density / grad_features must have shapes [", N, ", ", M, ", 1] / [", N, ", ", M,
              ", ", F, "], got ", shape_str(grad_density), " and ", shape_str(grad_features));
  // A cotangent on another device would reach the kernels as a foreign pointer.
  check_same_device(grad_density, "grad_density", planes, "planes");
  check_same_device(grad_features, "grad_features", planes, "planes");
  const auto w0 = fc0_weight.detach(), b0 = fc0_bias.detach();
  const auto w1 = fc1_weight.detach(), b1 = fc1_bias.detach();
  const auto opts = planes.options();
  // Mean features [N * M, C] from the sample_triplane kernel, launched here directly.
  const auto pcl = planes.detach().permute({0, 1, 3, 4, 2}).contiguous();
  const auto pts = points.detach().contiguous();
  auto f = at::empty({N * M, C}, opts);
  if (N * M > 0) {
    const auto stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES(planes.scalar_type(), "decode_triplane_backward_cuda", [&] {
      launch_sample_triplane_forward<scalar_t>(pcl.data_ptr<scalar_t>(), pts.data_ptr<scalar_t>(),
                                               f.data_ptr<scalar_t>(), N, M, C, planes.size(3), planes.size(4),
                                               static_cast<scalar_t>(2.0 / box_warp), 0, stream);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  const auto z = at::addmm(b0, f, w0.t());
  const auto h = at::softplus(z, 1, 20);
  const auto gd = grad_density.reshape({N * M, 1}).to(planes.scalar_type());
  const auto gf = grad_features.reshape({N * M, F}).to(planes.scalar_type());
  // Only the feature rows of the output layer pass through the sigmoid: the density row's
  // pre-activation is not needed.
  const auto s = at::sigmoid(at::addmm(b1.narrow(0, 1, F), h, w1.narrow(0, 1, F).t()));
  const auto gx = at::cat({gd, at::sigmoid_backward(gf * (1 + 2 * 0.001), s)}, 1);
  const auto gz = at::softplus_backward(at::mm(gx, w1), z, 1, 20);
  at::Tensor gplanes = at::empty({0}, opts), gpoints = at::empty({0}, points.options());
  if (planes_grad || points_grad) {
    const auto gfeat = at::mm(gz, w0).reshape({N, M, C});
    std::tie(gplanes, gpoints) =
        sample_triplane_backward_cuda_checked(gfeat, planes, points, box_warp, 0, planes_grad, points_grad);
  }
  return {gplanes, gpoints, at::mm(gz.t(), f), gz.sum(0), at::mm(gx.t(), h), gx.sum(0)};
}

}  // namespace

TORCH_LIBRARY_IMPL(nofa, CUDA, m) {
  m.impl("decode_triplane", &decode_triplane_cuda);
  m.impl("decode_triplane_backward", &decode_triplane_backward_cuda);
}

}  // namespace nofa
