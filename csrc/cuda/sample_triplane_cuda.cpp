// sample_triplane on CUDA: argument checks, allocation, and the launch (host side). The
// kernels are in cuda/sample_triplane_device.h, their launchers in cuda/sample_triplane.cu.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/common/half_checks.h"
#include "sample_triplane.h"

namespace nofa {

// The launchers (cuda/sample_triplane.cu): raw pointers, no torch headers there, so the .cu
// compiles in seconds. Planes and their gradient are channels-last: [N, 3, H, W, C].
template <typename T>
void launch_sample_triplane_forward(const T* planes_cl, const T* points, T* out, int64_t N,
                                    int64_t M, int64_t C, int64_t H, int64_t W, T scale, int reduce,
                                    cudaStream_t stream);

// grad_planes_cl (zero-initialised) and grad_points may each be null when not needed.
template <typename T>
void launch_sample_triplane_backward(const T* grad_out, const T* planes_cl, const T* points,
                                     T* grad_planes_cl, T* grad_points, int64_t N, int64_t M,
                                     int64_t C, int64_t H, int64_t W, T scale, int reduce,
                                     cudaStream_t stream);

// Half-precision planes (float16, or bfloat16 when bf16) with float32 points: output in
// the planes' type, accumulated in float32. Pointers to [N, 3, H, W, C] planes and the
// [N, M, C or 3C] output of that type.
void launch_sample_triplane_forward_half(const void* planes_cl, bool bf16, const float* points,
                                         void* out, int64_t N, int64_t M, int64_t C, int64_t H,
                                         int64_t W, float scale, int reduce, cudaStream_t stream);

namespace {

// float16 / bfloat16 planes (the autocast path): float32 points and accumulation, output
// in the planes' type.
at::Tensor sample_triplane_half_cuda(const at::Tensor& planes, const at::Tensor& points,
                                     double box_warp, int reduce) {
  check_half_sample_triplane(planes, points, box_warp);
  const c10::cuda::CUDAGuard guard(planes.device());
  const int64_t N = planes.size(0), M = points.size(1), C = planes.size(2);
  auto out = at::empty({N, M, reduce == 1 ? 3 * C : C}, planes.options());
  if (out.numel() == 0) return out;
  const auto pcl = planes.permute({0, 1, 3, 4, 2}).contiguous();
  const auto pts = points.contiguous();
  launch_sample_triplane_forward_half(
      pcl.data_ptr(), planes.scalar_type() == at::kBFloat16, pts.data_ptr<float>(), out.data_ptr(),
      N, M, C, planes.size(3), planes.size(4), static_cast<float>(2.0 / box_warp), reduce,
      c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor sample_triplane_cuda(const at::Tensor& planes, const at::Tensor& points, double box_warp,
                                c10::string_view reduce_s) {
  if (is_half_planes(planes))
    return sample_triplane_half_cuda(planes, points, box_warp, parse_reduce(std::string(reduce_s)));
  check_sample_triplane(planes, points, box_warp);
  const int reduce = parse_reduce(std::string(reduce_s));
  const c10::cuda::CUDAGuard guard(planes.device());
  const int64_t N = planes.size(0), M = points.size(1), C = planes.size(2);
  auto out = at::empty({N, M, reduce == 1 ? 3 * C : C}, planes.options());
  if (out.numel() == 0) return out;
  const auto pcl = planes.permute({0, 1, 3, 4, 2}).contiguous();
  const auto pts = points.contiguous();
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(planes.scalar_type(), "sample_triplane_cuda", [&] {
    launch_sample_triplane_forward<scalar_t>(
        pcl.data_ptr<scalar_t>(), pts.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), N, M, C,
        planes.size(3), planes.size(4), static_cast<scalar_t>(2.0 / box_warp), reduce, stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

std::tuple<at::Tensor, at::Tensor> sample_triplane_backward_cuda(
    const at::Tensor& grad_out, const at::Tensor& planes, const at::Tensor& points, double box_warp,
    c10::string_view reduce_s, bool planes_grad, bool points_grad) {
  if (is_half_planes(planes)) {
    // Half-precision planes: the gradient is computed in float32 (upcast copies) and the
    // plane gradient rounded once to the planes' type.
    check_half_sample_triplane(planes, points, box_warp);
    auto [gp, gx] =
        sample_triplane_backward_cuda(grad_out.to(at::kFloat), planes.to(at::kFloat), points,
                                      box_warp, reduce_s, planes_grad, points_grad);
    return {planes_grad ? gp.to(planes.scalar_type()) : gp, gx};
  }
  check_sample_triplane(planes, points, box_warp);
  const int reduce = parse_reduce(std::string(reduce_s));
  const c10::cuda::CUDAGuard guard(planes.device());
  const int64_t N = planes.size(0), M = points.size(1), C = planes.size(2);
  const int64_t H = planes.size(3), W = planes.size(4);
  TORCH_CHECK(grad_out.dim() == 3 && grad_out.size(0) == N && grad_out.size(1) == M &&
                  grad_out.size(2) == (reduce == 1 ? 3 * C : C),
              "nofa: grad_out has shape ", shape_str(grad_out), ", expected [N, M, out_channels]");
  check_same_device(grad_out, "grad_out", planes, "planes");
  // The plane gradient is accumulated with float atomics (many points share a texel): the
  // summation order, and so the last bits, vary from run to run, as in grid_sample's backward.
  if (planes_grad && N * M * C > 0) {
    at::globalContext().alertNotDeterministic(
        "nofa::sample_triplane_backward (CUDA, planes gradient)");
  }
  // The plane gradient has at::empty_like(planes)'s strides (as on the CPU and in the fake);
  // the kernel accumulates into [N, 3, H, W, C] memory, which is that layout for
  // channels-last-strided planes and a zeroed temporary otherwise.
  auto gplanes = planes_grad ? at::empty_like(planes) : at::empty({0}, planes.options());
  const bool in_place = planes_grad && is_channels_last_strided(gplanes);
  auto gplanes_cl = !planes_grad ? gplanes
                    : in_place   ? gplanes.zero_()
                                 : at::zeros({N, 3, H, W, C}, planes.options());
  auto gpoints =
      points_grad ? at::zeros({N, M, 3}, points.options()) : at::empty({0}, points.options());
  if (N * M * C > 0 && (planes_grad || points_grad)) {
    const auto go = grad_out.contiguous().to(planes.scalar_type());
    const auto pts = points.contiguous();
    const auto pcl = points_grad ? planes.permute({0, 1, 3, 4, 2}).contiguous() : at::Tensor();
    const auto stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES(planes.scalar_type(), "sample_triplane_backward_cuda", [&] {
      launch_sample_triplane_backward<scalar_t>(
          go.data_ptr<scalar_t>(), points_grad ? pcl.data_ptr<scalar_t>() : nullptr,
          pts.data_ptr<scalar_t>(), planes_grad ? gplanes_cl.data_ptr<scalar_t>() : nullptr,
          points_grad ? gpoints.data_ptr<scalar_t>() : nullptr, N, M, C, H, W,
          static_cast<scalar_t>(2.0 / box_warp), reduce, stream);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  if (planes_grad && !in_place) gplanes.copy_(gplanes_cl.permute({0, 1, 4, 2, 3}));
  return {gplanes, gpoints};
}

}  // namespace

TORCH_LIBRARY_IMPL(nofa, CUDA, m) {
  m.impl("sample_triplane", &sample_triplane_cuda);
  m.impl("sample_triplane_backward", &sample_triplane_backward_cuda);
}

}  // namespace nofa
