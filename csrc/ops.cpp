// Every op schema of nofa, and nothing else. Implementations are registered per backend
// (csrc/cpu/*.cpp, csrc/cuda/*.cpp) with TORCH_LIBRARY_IMPL; autograd and fake (meta)
// implementations live in Python (nofa/ops/).
#include <torch/library.h>

#include <string>

#include "cpu/isa.h"

#ifndef NOFA_CUDA_ARCHS
#define NOFA_CUDA_ARCHS ""
#endif

namespace nofa {

#ifdef NOFA_WITH_CUDA
int64_t decode_triplane_cuda_fused_backward_calls();  // cuda/decode_triplane_cuda.cpp
#endif

std::string build_info() {
#ifdef NOFA_WITH_CUDA
  std::string info = std::string("{\"cuda\": true, \"cuda_archs\": \"") + NOFA_CUDA_ARCHS + "\"";
#else
  std::string info = "{\"cuda\": false, \"cuda_archs\": \"\"";
#endif
  // Kept for older callers: whether decode_triplane has a vector path on this CPU, and how
  // many of its calls took one (cpu_isa_info has the per-op, per-path detail).
  using isa::Op;
  const bool fast = isa::best_of(Op::kDecodeTriplaneForward) != isa::Isa::kScalar;
  int64_t fast_calls = 0;
  for (const Op op : {Op::kDecodeTriplaneForward, Op::kDecodeTriplaneBackward})
    fast_calls += isa::calls(op, isa::Isa::kAvx2) + isa::calls(op, isa::Isa::kAvx512);
  info += std::string(", \"cpu_fast_decoder\": ") + (fast ? "true" : "false");
  info += ", \"cpu_fast_decoder_calls\": " + std::to_string(fast_calls);
  // Calls of decode_triplane_backward on CUDA that took the fused kernel (the tests assert
  // which CUDA backward path ran).
#ifdef NOFA_WITH_CUDA
  const int64_t fused_calls = decode_triplane_cuda_fused_backward_calls();
#else
  const int64_t fused_calls = 0;
#endif
  return info + ", \"cuda_fused_decode_backward_calls\": " + std::to_string(fused_calls) + "}";
}

TORCH_LIBRARY(nofa, m) {
  m.def("build_info() -> str", &build_info);
  // The CPU instruction-set layer (docs/cpu_isa.md): force a tier ("scalar", "avx2",
  // "avx512") or go back to detection ("auto"), returning the previous setting; and a JSON
  // report of the detected / forced tier and the path each CPU op takes.
  m.def("set_cpu_isa(str isa) -> str", &set_cpu_isa_op);
  m.def("cpu_isa_info() -> str", &cpu_isa_info_op);

  // Tri-plane sampling (docs/sample_triplane.md). reduce: "mean" -> [N, M, C],
  // "concat" -> [N, M, 3C].
  m.def("sample_triplane(Tensor planes, Tensor points, float box_warp, str reduce) -> Tensor");
  // Returns (grad_planes, grad_points); a gradient not asked for is an empty tensor.
  m.def(
      "sample_triplane_backward(Tensor grad_out, Tensor planes, Tensor points, float box_warp, "
      "str reduce, bool planes_grad, bool points_grad) -> (Tensor, Tensor)");

  // Tri-plane memory layout: the same [N, 3, C, H, W] values, stored channels-last
  // ([N, 3, H, W, C] in memory, so a tap's C values are contiguous: what the CPU kernels
  // read) or contiguous. The result is a new tensor; its own inverse gives the gradient.
  m.def("channels_last_planes(Tensor planes, bool channels_last) -> Tensor");

  // Volume compositing (docs/composite_rays.md) -> (features [N, R, C], depth [N, R, 1],
  // weights [N, R, S-1, 1]).
  m.def(
      "composite_rays(Tensor colors, Tensor densities, Tensor depths, bool white_back) "
      "-> (Tensor, Tensor, Tensor)");
  // Cotangents of the three outputs, each optional (None: no gradient flows from it).
  // Returns (grad_colors, grad_densities, grad_depths); one not asked for is empty.
  m.def(
      "composite_rays_backward(Tensor? grad_features, Tensor? grad_depth, Tensor? grad_weights, "
      "Tensor colors, Tensor densities, Tensor depths, bool white_back, bool colors_grad, "
      "bool densities_grad, bool depths_grad) -> (Tensor, Tensor, Tensor)");

  // ---- composite_rays_merged: composite_rays of two sample sets per ray (e.g. coarse +
  // importance samples), each sorted by depth, merged on the fly; the outputs are those
  // of composite_rays on cat + stable sort (ties: set a first), weights in merged order
  // [N, R, S_a + S_b - 1, 1].
  m.def(
      "composite_rays_merged(Tensor colors_a, Tensor densities_a, Tensor depths_a, "
      "Tensor colors_b, Tensor densities_b, Tensor depths_b, bool white_back) "
      "-> (Tensor, Tensor, Tensor)");
  // Returns (grad_colors_a, grad_densities_a, grad_depths_a, grad_colors_b,
  // grad_densities_b, grad_depths_b); each flag covers both sets; one not asked is empty.
  m.def(
      "composite_rays_merged_backward(Tensor? grad_features, Tensor? grad_depth, "
      "Tensor? grad_weights, Tensor colors_a, Tensor densities_a, Tensor depths_a, "
      "Tensor colors_b, Tensor densities_b, Tensor depths_b, bool white_back, "
      "bool colors_grad, bool densities_grad, bool depths_grad) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");

  // ---- deform_points (docs/deformation.md): the fused deformation field -------------
  // Weights in nn.Linear layout; first layers take [PE(x) | alpha | beta] (D-Net) and
  // [PE(x) | alpha] (W-Net). Returns (x_c [N, M, 3], offset [N, M, 3], weight [N, M, 1],
  // hidden): hidden is [N, M, S] (the D-Net's activations of layers 1 .. L-2, for the
  // backward) when save_hidden, else empty. save_hidden has no default on purpose: the
  // dispatcher drops arguments equal to their default before the Python autograd formula
  // sees them, and torch < 2.13 then rejects the formula's gradient list for an op with
  // tensor-list arguments (seen on an H200 with torch 2.11).
  m.def(
      "deform_points(Tensor points, Tensor alpha, Tensor beta, Tensor[] d_weights, "
      "Tensor[] d_biases, Tensor[] w_weights, Tensor[] w_biases, int n_freqs, "
      "bool save_hidden) -> (Tensor, Tensor, Tensor, Tensor)");
  // Upstream gradients of (x_c, offset, weight) -> (grad_points, grad_alpha, grad_beta,
  // grad_d_weights, grad_d_biases, grad_w_weights, grad_w_biases). Recomputes whatever
  // `hidden` (empty, or the forward's) does not hold.
  m.def(
      "deform_points_backward(Tensor grad_x_c, Tensor grad_offset, Tensor grad_weight, "
      "Tensor points, Tensor alpha, Tensor beta, Tensor[] d_weights, Tensor[] d_biases, "
      "Tensor[] w_weights, Tensor[] w_biases, int n_freqs, Tensor hidden) "
      "-> (Tensor, Tensor, Tensor, Tensor[], Tensor[], Tensor[], Tensor[])");

  // ---- decode_triplane (docs/decode_triplane.md): tri-plane lookup ("mean") fused with the OSG
  // decoder. fc weights in nn.Linear layout: fc0 [hidden, C], fc1 [1 + F, hidden].
  // Returns (raw density [N, M, 1], features [N, M, F]).
  m.def(
      "decode_triplane(Tensor planes, Tensor points, float box_warp, Tensor fc0_weight, "
      "Tensor fc0_bias, Tensor fc1_weight, Tensor fc1_bias) -> (Tensor, Tensor)");
  // Returns (grad_planes, grad_points, grad_fc0_weight, grad_fc0_bias, grad_fc1_weight,
  // grad_fc1_bias); a gradient not asked for is an empty tensor (weights_grad covers all
  // four decoder tensors). No defaults on purpose (see deform_points). `features`:
  // the forward's features output if at hand (kernels may use it instead of recomputing the
  // output layer; the CUDA kernel ignores it).
  m.def(
      "decode_triplane_backward(Tensor grad_density, Tensor grad_features, Tensor? features, "
      "Tensor planes, "
      "Tensor points, float box_warp, Tensor fc0_weight, Tensor fc0_bias, Tensor fc1_weight, "
      "Tensor fc1_bias, bool planes_grad, bool points_grad, bool weights_grad) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
}

}  // namespace nofa
