// decode_triplane: argument checks shared by the CPU and CUDA glue.
#pragma once
#include <ATen/core/Tensor.h>

#include "checks.h"
#include "sample_triplane.h"

namespace nofa {

// Shapes of the OSG decoder's two layers against planes [N, 3, C, H, W] (any dtype): shared by
// the float32 checks below and the half-plane checks in cuda/common/half_checks.h.
inline void check_decoder_shapes(const at::Tensor& planes, const at::Tensor& w0,
                                 const at::Tensor& b0, const at::Tensor& w1, const at::Tensor& b1) {
  check_dim(w0, 2, "fc0_weight", "[hidden, C]");
  check_dim(b0, 1, "fc0_bias", "[hidden]");
  check_dim(w1, 2, "fc1_weight", "[1 + F, hidden]");
  check_dim(b1, 1, "fc1_bias", "[1 + F]");
  TORCH_CHECK(w0.size(1) == planes.size(2),
              "nofa: fc0_weight must have shape [hidden, C] with C = ", planes.size(2), ", got ",
              shape_str(w0));
  TORCH_CHECK(b0.size(0) == w0.size(0), "nofa: fc0_bias must have shape [", w0.size(0), "], got ",
              shape_str(b0));
  TORCH_CHECK(w1.size(1) == w0.size(0) && w1.size(0) >= 1,
              "nofa: fc1_weight must have shape [1 + F, ", w0.size(0), "], got ", shape_str(w1));
  TORCH_CHECK(b1.size(0) == w1.size(0), "nofa: fc1_bias must have shape [", w1.size(0), "], got ",
              shape_str(b1));
}

inline void check_decode_triplane(const at::Tensor& planes, const at::Tensor& points,
                                  double box_warp, const at::Tensor& w0, const at::Tensor& b0,
                                  const at::Tensor& w1, const at::Tensor& b1) {
  check_sample_triplane(planes, points, box_warp);
  check_decoder_shapes(planes, w0, b0, w1, b1);
  const at::Tensor* ts[4] = {&w0, &b0, &w1, &b1};
  const char* names[4] = {"fc0_weight", "fc0_bias", "fc1_weight", "fc1_bias"};
  for (int i = 0; i < 4; ++i) {
    check_float(*ts[i], names[i]);
    check_same_dtype(planes, "planes", *ts[i], names[i]);
    check_same_device(planes, "planes", *ts[i], names[i]);
  }
}

}  // namespace nofa
