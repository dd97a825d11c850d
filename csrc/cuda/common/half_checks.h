// Argument checks for float16 / bfloat16 planes on CUDA (what torch.autocast("cuda") hands
// the kernels, csrc/cuda/autocast_cuda.cpp): the shapes as for float32 planes, with
// float32 points and decoder tensors. Host only.
#pragma once
#include <ATen/ATen.h>

#include "checks.h"
#include "decode_triplane.h"

namespace nofa {

inline bool is_half_planes(const at::Tensor& planes) {
  return planes.scalar_type() == at::kHalf || planes.scalar_type() == at::kBFloat16;
}

inline void check_float32_with_half_planes(const at::Tensor& t, const char* name,
                                           const at::Tensor& planes) {
  TORCH_CHECK(t.scalar_type() == at::kFloat, "nofa: with ", planes.scalar_type(), " planes, ", name,
              " must be float32, got ", t.scalar_type());
  check_same_device(planes, "planes", t, name);
}

inline void check_half_sample_triplane(const at::Tensor& planes, const at::Tensor& points,
                                       double box_warp) {
  check_dim(planes, 5, "planes", "[N, 3, C, H, W]");
  check_dim(points, 3, "points", "[N, M, 3]");
  TORCH_CHECK(planes.size(1) == 3, "nofa: planes must hold 3 planes ([N, 3, C, H, W]), got ",
              shape_str(planes));
  TORCH_CHECK(points.size(2) == 3, "nofa: points must have shape [N, M, 3], got ",
              shape_str(points));
  TORCH_CHECK(planes.size(0) == points.size(0),
              "nofa: planes and points must have the same batch "
              "size N, got ",
              planes.size(0), " and ", points.size(0));
  check_float32_with_half_planes(points, "points", planes);
  TORCH_CHECK(box_warp > 0, "nofa: box_warp must be > 0, got ", box_warp);
}

inline void check_half_decode_triplane(const at::Tensor& planes, const at::Tensor& points,
                                       double box_warp, const at::Tensor& w0, const at::Tensor& b0,
                                       const at::Tensor& w1, const at::Tensor& b1) {
  check_half_sample_triplane(planes, points, box_warp);
  check_decoder_shapes(planes, w0, b0, w1, b1);
  check_float32_with_half_planes(w0, "fc0_weight", planes);
  check_float32_with_half_planes(b0, "fc0_bias", planes);
  check_float32_with_half_planes(w1, "fc1_weight", planes);
  check_float32_with_half_planes(b1, "fc1_bias", planes);
}

}  // namespace nofa
