// decode_triplane on CUDA: checks, allocation and the kernel launches. The backward takes
// the fused kernel (cuda/decode_triplane_backward.cu) for float32 at the fast forward's
// sizes. Other sizes and float64 (the general path) work through the points in chunks: it
// recomputes the chunk's forward with cuBLAS GEMMs (features from the sample_triplane CUDA
// kernel, launched directly: no trip through the dispatcher, whose Autograd key runs
// Python), accumulates the decoder's gradients when asked for, and hands the chunk's
// feature gradient to the sample_triplane CUDA backward kernels only when a plane or point
// gradient is asked for.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>

#include "cuda/common/half_checks.h"
#include "decode_triplane.h"

namespace nofa {

// ---- The launchers: raw pointers, no torch headers in the .cu files, so they compile in
// seconds. Planes and their gradient are channels-last: [N, 3, H, W, C].

// The forward (cuda/decode_triplane.cu).

// Points per thread block of the general kernel for C features and Hd hidden units, so
// that its shared memory (tile * (C + Hd) values) stays within the default 48 KiB; 0 when
// C or Hd is not positive (the glue refuses those first).
int64_t decode_triplane_tile(int64_t C, int64_t Hd, int64_t elem_size);

// Whether the fast kernel (decoder in registers, weights in shared memory) takes these
// sizes on the current device: float32 planes, C <= 32, 1 + F <= 33.
bool decode_triplane_fast_path(int64_t C, int64_t Hd, int64_t O, int64_t H, int64_t W,
                               int64_t elem_size);

// fast: w0 / w1 in nn.Linear layout ([Hd, C], [O, Hd]); otherwise transposed ([C, Hd],
// [Hd, O]) for the general kernel's coalesced reads.
template <typename T>
void launch_decode_triplane_forward(const T* planes_cl, const T* points, const T* w0, const T* b0,
                                    const T* w1, const T* b1, T* density, T* features, int64_t N,
                                    int64_t M, int64_t C, int64_t H, int64_t W, int64_t Hd,
                                    int64_t O, T scale, bool fast, cudaStream_t stream);

// The fast kernel with half-precision planes (float16, or bfloat16 when bf16; e.g. under
// torch.autocast): float32 points, weights, arithmetic and outputs. Only for sizes that
// decode_triplane_fast_path accepts (with elem_size 4).
void launch_decode_triplane_forward_half(const void* planes_cl, bool bf16, const float* points,
                                         const float* w0, const float* b0, const float* w1,
                                         const float* b1, float* density, float* features,
                                         int64_t N, int64_t M, int64_t C, int64_t H, int64_t W,
                                         int64_t Hd, int64_t O, float scale, cudaStream_t stream);

// The fused backward (cuda/decode_triplane_backward.cu).

// Values in one row of the fused kernel's weight-gradient output, in this order:
// fc0 weight [Hd, C], fc0 bias [Hd], fc1 weight [O, Hd], fc1 bias [O].
int64_t decode_triplane_weight_grad_size(int64_t C, int64_t Hd, int64_t O);

// Whether the fused kernel takes these sizes on the current device (float32 only; the
// caller checks the dtype): C <= 32, 1 + F = O <= 33, and its shared memory within the
// device's opt-in limit per block.
bool decode_triplane_fused_backward_ok(int64_t C, int64_t Hd, int64_t O);

// Thread blocks the fused kernel is launched with for P points: at most one per tile of
// 128 points and at most what the device keeps resident at once. The weight-gradient
// output has this many rows.
int64_t decode_triplane_fused_backward_blocks(int64_t P, int64_t C, int64_t Hd, int64_t O);

// The fused backward. gd [P], gf [P, O - 1]: cotangents of density and features; w0 / w1
// in nn.Linear layout ([Hd, C], [O, Hd]). Each of grad_planes_cl (zero-initialised
// [N, 3, H, W, C], accumulated with atomics), grad_points ([P, 3], written) and
// grad_weights ([blocks, decode_triplane_weight_grad_size], one partial sum per block,
// written; the caller sums the rows) may be null when not wanted. `blocks` comes from
// decode_triplane_fused_backward_blocks.
void launch_decode_triplane_backward_fused(const float* gd, const float* gf, const float* planes_cl,
                                           const float* points, const float* w0, const float* b0,
                                           const float* w1, const float* b1, float* grad_planes_cl,
                                           float* grad_points, float* grad_weights, int64_t P,
                                           int64_t M, int64_t C, int64_t H, int64_t W, int64_t Hd,
                                           int64_t O, float scale, int64_t blocks,
                                           cudaStream_t stream);

// The sample_triplane kernels, which the chunked backward runs on each chunk's points
// (cuda/sample_triplane.cu; declared as in cuda/sample_triplane_cuda.cpp).
// grad_planes_cl (zero-initialised) and grad_points may each be null when not needed.
template <typename T>
void launch_sample_triplane_forward(const T* planes_cl, const T* points, T* out, int64_t N,
                                    int64_t M, int64_t C, int64_t H, int64_t W, T scale, int reduce,
                                    cudaStream_t stream);
template <typename T>
void launch_sample_triplane_backward(const T* grad_out, const T* planes_cl, const T* points,
                                     T* grad_planes_cl, T* grad_points, int64_t N, int64_t M,
                                     int64_t C, int64_t H, int64_t W, T scale, int reduce,
                                     cudaStream_t stream);

namespace {

std::atomic<int64_t> fused_backward_calls{0};  // reported by build_info (csrc/ops.cpp)

// Zero widths would leave nothing to decode and divide by zero in the tile arithmetic.
void check_widths(const at::Tensor& planes, const at::Tensor& fc0_weight) {
  TORCH_CHECK(planes.size(2) > 0, "nofa: planes must have C >= 1 channels ([N, 3, C, H, W]), got ",
              shape_str(planes));
  TORCH_CHECK(fc0_weight.size(0) > 0,
              "nofa: fc0_weight must have shape [hidden, C] with hidden >= 1, got ",
              shape_str(fc0_weight));
}

std::tuple<at::Tensor, at::Tensor> decode_triplane_cuda(const at::Tensor& planes,
                                                        const at::Tensor& points, double box_warp,
                                                        const at::Tensor& fc0_weight,
                                                        const at::Tensor& fc0_bias,
                                                        const at::Tensor& fc1_weight,
                                                        const at::Tensor& fc1_bias);

// float16 / bfloat16 planes (the autocast path): float32 points, weights, arithmetic and
// outputs; the planes are read in their own type by the fast kernel (other sizes: the
// float32 path on an upcast copy).
std::tuple<at::Tensor, at::Tensor> decode_triplane_half_cuda(
    const at::Tensor& planes, const at::Tensor& points, double box_warp,
    const at::Tensor& fc0_weight, const at::Tensor& fc0_bias, const at::Tensor& fc1_weight,
    const at::Tensor& fc1_bias) {
  check_half_decode_triplane(planes, points, box_warp, fc0_weight, fc0_bias, fc1_weight, fc1_bias);
  check_widths(planes, fc0_weight);
  const int64_t N = planes.size(0), M = points.size(1), C = planes.size(2);
  const int64_t H = planes.size(3), W = planes.size(4);
  const int64_t Hd = fc0_weight.size(0), O = fc1_weight.size(0);
  const c10::cuda::CUDAGuard guard(planes.device());
  if (!decode_triplane_fast_path(C, Hd, O, H, W, sizeof(float))) {
    return decode_triplane_cuda(planes.to(at::kFloat), points, box_warp, fc0_weight, fc0_bias,
                                fc1_weight, fc1_bias);
  }
  const auto fopts = points.options();
  auto density = at::empty({N, M, 1}, fopts);
  auto features = at::empty({N, M, O - 1}, fopts);
  if (N * M == 0) return {density, features};
  const auto pcl = planes.permute({0, 1, 3, 4, 2}).contiguous();
  const auto pts = points.contiguous();
  const auto w0 = fc0_weight.contiguous(), b0 = fc0_bias.contiguous();
  const auto w1 = fc1_weight.contiguous(), b1 = fc1_bias.contiguous();
  launch_decode_triplane_forward_half(
      pcl.data_ptr(), planes.scalar_type() == at::kBFloat16, pts.data_ptr<float>(),
      w0.data_ptr<float>(), b0.data_ptr<float>(), w1.data_ptr<float>(), b1.data_ptr<float>(),
      density.data_ptr<float>(), features.data_ptr<float>(), N, M, C, H, W, Hd, O,
      static_cast<float>(2.0 / box_warp), c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {density, features};
}

std::tuple<at::Tensor, at::Tensor> decode_triplane_cuda(const at::Tensor& planes,
                                                        const at::Tensor& points, double box_warp,
                                                        const at::Tensor& fc0_weight,
                                                        const at::Tensor& fc0_bias,
                                                        const at::Tensor& fc1_weight,
                                                        const at::Tensor& fc1_bias) {
  if (is_half_planes(planes)) {
    return decode_triplane_half_cuda(planes, points, box_warp, fc0_weight, fc0_bias, fc1_weight,
                                     fc1_bias);
  }
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
  TORCH_CHECK(fast || decode_triplane_tile(C, Hd, planes.element_size()) >= 1,
              "nofa: decode_triplane on CUDA "
              "supports C + hidden up to the 48 KiB shared memory of one block, got C = ",
              C, ", hidden = ", Hd);
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
        pcl.data_ptr<scalar_t>(), pts.data_ptr<scalar_t>(), w0.data_ptr<scalar_t>(),
        b0.data_ptr<scalar_t>(), w1.data_ptr<scalar_t>(), b1.data_ptr<scalar_t>(),
        density.data_ptr<scalar_t>(), features.data_ptr<scalar_t>(), N, M, C, H, W, Hd, O,
        static_cast<scalar_t>(2.0 / box_warp), fast, stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {density, features};
}

// Points per backward chunk: the chunk's [rows, hidden] activations are the backward's
// working memory (about 5 x 64 MiB at hidden 64), whatever N * M is.
constexpr int64_t kBackwardChunk = int64_t(1) << 18;

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
decode_triplane_backward_cuda(
    const at::Tensor& grad_density, const at::Tensor& grad_features,
    const c10::optional<at::Tensor>& /*features: the CUDA backward recomputes them*/,
    const at::Tensor& planes, const at::Tensor& points, double box_warp,
    const at::Tensor& fc0_weight, const at::Tensor& fc0_bias, const at::Tensor& fc1_weight,
    const at::Tensor& fc1_bias, bool planes_grad, bool points_grad, bool weights_grad) {
  if (is_half_planes(planes)) {
    // Half-precision planes: the backward runs in float32 on an upcast copy (same layout);
    // the plane gradient is rounded once to the planes' type.
    check_half_decode_triplane(planes, points, box_warp, fc0_weight, fc0_bias, fc1_weight,
                               fc1_bias);
    auto r = decode_triplane_backward_cuda(
        grad_density, grad_features, std::nullopt, planes.to(at::kFloat), points, box_warp,
        fc0_weight, fc0_bias, fc1_weight, fc1_bias, planes_grad, points_grad, weights_grad);
    if (planes_grad) std::get<0>(r) = std::get<0>(r).to(planes.scalar_type());
    return r;
  }
  check_decode_triplane(planes, points, box_warp, fc0_weight, fc0_bias, fc1_weight, fc1_bias);
  check_widths(planes, fc0_weight);
  const c10::cuda::CUDAGuard guard(planes.device());
  const int64_t N = planes.size(0), M = points.size(1), C = planes.size(2),
                F = fc1_weight.size(0) - 1;
  const int64_t H = planes.size(3), W = planes.size(4), Hd = fc0_weight.size(0);
  TORCH_CHECK(grad_density.numel() == N * M && grad_features.numel() == N * M * F,
              "nofa: grad_density / grad_features must have shapes [", N, ", ", M, ", 1] / [", N,
              ", ", M, ", ", F, "], got ", shape_str(grad_density), " and ",
              shape_str(grad_features));
  // A cotangent on another device would reach the kernels as a foreign pointer.
  check_same_device(grad_density, "grad_density", planes, "planes");
  check_same_device(grad_features, "grad_features", planes, "planes");
  const auto w0 = fc0_weight.detach(), b0 = fc0_bias.detach();
  const auto w1 = fc1_weight.detach(), b1 = fc1_bias.detach();
  const auto opts = planes.options();
  // Weight gradients not asked for are empty tensors, as the plane and point ones.
  const auto wz = [&](at::IntArrayRef shape) {
    return weights_grad ? at::zeros(shape, opts) : at::empty({0}, opts);
  };
  auto gw0 = wz({Hd, C}), gb0 = wz({Hd});
  auto gw1 = wz({F + 1, Hd}), gb1 = wz({F + 1});
  // The plane gradient has at::empty_like(planes)'s strides (as on the CPU and in the
  // fake); the kernels accumulate into [N, 3, H, W, C] memory: that layout itself for
  // channels-last planes, a zeroed temporary otherwise.
  auto gplanes = planes_grad ? at::empty_like(planes) : at::empty({0}, opts);
  const bool in_place = planes_grad && is_channels_last_strided(gplanes);
  auto gplanes_cl = !planes_grad ? gplanes
                    : in_place   ? gplanes.zero_()
                                 : at::zeros({N, 3, H, W, C}, opts);
  auto gpoints =
      points_grad ? at::zeros({N, M, 3}, points.options()) : at::empty({0}, points.options());
  if (N * M == 0) {
    if (planes_grad && !in_place) gplanes.copy_(gplanes_cl.permute({0, 1, 4, 2, 3}));
    return {gplanes, gpoints, gw0, gb0, gw1, gb1};
  }
  if (planes_grad) {
    // Float atomics (many points share a texel): last bits vary from run to run.
    at::globalContext().alertNotDeterministic(
        "nofa::decode_triplane_backward (CUDA, planes gradient)");
  }
  // A no-op for channels-last planes (the renderer relayouts once per render).
  const auto pcl = planes.detach().permute({0, 1, 3, 4, 2}).contiguous();
  const auto pts = points.detach().contiguous();
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const float scale = static_cast<float>(2.0 / box_warp);
  if (planes.scalar_type() == at::kFloat && decode_triplane_fused_backward_ok(C, Hd, F + 1)) {
    const int64_t P = N * M, blocks = decode_triplane_fused_backward_blocks(P, C, Hd, F + 1);
    const auto gd = grad_density.reshape({P}).to(at::kFloat).contiguous();
    const auto gf = grad_features.reshape({P, F}).to(at::kFloat).contiguous();
    const auto w0c = w0.contiguous(), b0c = b0.contiguous(), w1c = w1.contiguous(),
               b1c = b1.contiguous();
    // One row of weight-gradient sums per block (every block writes its whole row), summed
    // here in a fixed order: no atomics on the weights.
    auto partial = weights_grad
                       ? at::empty({blocks, decode_triplane_weight_grad_size(C, Hd, F + 1)}, opts)
                       : at::empty({0}, opts);
    launch_decode_triplane_backward_fused(
        gd.data_ptr<float>(), gf.data_ptr<float>(), pcl.data_ptr<float>(), pts.data_ptr<float>(),
        w0c.data_ptr<float>(), b0c.data_ptr<float>(), w1c.data_ptr<float>(), b1c.data_ptr<float>(),
        planes_grad ? gplanes_cl.data_ptr<float>() : nullptr,
        points_grad ? gpoints.data_ptr<float>() : nullptr,
        weights_grad ? partial.data_ptr<float>() : nullptr, P, M, C, H, W, Hd, F + 1, scale, blocks,
        stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    fused_backward_calls.fetch_add(1, std::memory_order_relaxed);
    if (weights_grad) {
      const auto total = partial.sum(0);
      int64_t at0 = 0;
      for (at::Tensor* g : {&gw0, &gb0, &gw1, &gb1}) {
        g->copy_(total.narrow(0, at0, g->numel()).view(g->sizes()));
        at0 += g->numel();
      }
    }
    if (planes_grad && !in_place) gplanes.copy_(gplanes_cl.permute({0, 1, 4, 2, 3}));
    return {gplanes, gpoints, gw0, gb0, gw1, gb1};
  }
  const auto gd_all = grad_density.reshape({N * M, 1}).to(planes.scalar_type());
  const auto gf_all = grad_features.reshape({N * M, F}).to(planes.scalar_type());
  const auto w1f = w1.narrow(0, 1, F), b1f = b1.narrow(0, 1, F);
  const int64_t chunk = std::min(M, kBackwardChunk);
  const int64_t plane_stride = 3 * H * W * C;
  // Chunks of one batch element's points: the kernels then see N = 1 and that element's
  // planes, and nothing of size [N * M, hidden] exists at once.
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t m0 = 0; m0 < M; m0 += chunk) {
      const int64_t rows = std::min(chunk, M - m0), r0 = n * M + m0;
      auto f = at::empty({rows, C}, opts);
      AT_DISPATCH_FLOATING_TYPES(planes.scalar_type(), "decode_triplane_backward_cuda", [&] {
        using T = scalar_t;
        launch_sample_triplane_forward<T>(pcl.data_ptr<T>() + n * plane_stride,
                                          pts.data_ptr<T>() + r0 * 3, f.data_ptr<T>(), 1, rows, C,
                                          H, W, static_cast<T>(2.0 / box_warp), 0, stream);
      });
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      const auto z = at::addmm(b0, f, w0.t());
      const auto h = at::softplus(z, 1, 20);
      // Only the feature rows of the output layer pass through the sigmoid: the density
      // row's pre-activation is not needed.
      const auto sg = at::sigmoid(at::addmm(b1f, h, w1f.t()));
      const auto gx =
          at::cat({gd_all.narrow(0, r0, rows),
                   at::sigmoid_backward(gf_all.narrow(0, r0, rows) * (1 + 2 * 0.001), sg)},
                  1);
      const auto gz = at::softplus_backward(at::mm(gx, w1), z, 1, 20);
      if (weights_grad) {
        gw0.addmm_(gz.t(), f);
        gb0.add_(gz.sum(0));
        gw1.addmm_(gx.t(), h);
        gb1.add_(gx.sum(0));
      }
      if (planes_grad || points_grad) {
        const auto gfeat = at::mm(gz, w0).contiguous();
        AT_DISPATCH_FLOATING_TYPES(planes.scalar_type(), "decode_triplane_backward_cuda", [&] {
          using T = scalar_t;
          launch_sample_triplane_backward<T>(
              gfeat.data_ptr<T>(), points_grad ? pcl.data_ptr<T>() + n * plane_stride : nullptr,
              pts.data_ptr<T>() + r0 * 3,
              planes_grad ? gplanes_cl.data_ptr<T>() + n * plane_stride : nullptr,
              points_grad ? gpoints.data_ptr<T>() + r0 * 3 : nullptr, 1, rows, C, H, W,
              static_cast<T>(2.0 / box_warp), 0, stream);
        });
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    }
  }
  if (planes_grad && !in_place) gplanes.copy_(gplanes_cl.permute({0, 1, 4, 2, 3}));
  return {gplanes, gpoints, gw0, gb0, gw1, gb1};
}

}  // namespace

int64_t decode_triplane_cuda_fused_backward_calls() {
  return fused_backward_calls.load(std::memory_order_relaxed);
}

TORCH_LIBRARY_IMPL(nofa, CUDA, m) {
  m.impl("decode_triplane", &decode_triplane_cuda);
  m.impl("decode_triplane_backward", &decode_triplane_backward_cuda);
}

}  // namespace nofa
