// sample_triplane: argument checks and the plane-layout tests shared by the CPU and CUDA glue.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>

#include "checks.h"

namespace nofa {

// 0 = mean over the three planes ([N, M, C]); 1 = concat ([N, M, 3C]).
inline int parse_reduce(const std::string& reduce) {
  if (reduce == "mean") return 0;
  if (reduce == "concat") return 1;
  TORCH_CHECK(false, "nofa: reduce must be \"mean\" or \"concat\", got \"", reduce, "\"");
  return 0;
}

// CPU kernels read planes from a channels-last copy ([N, 3, H, W, C]) once the points touch
// more texels than the copy moves; below that the [N, 3, C, H, W] layout is read directly.
inline bool use_channels_last(int64_t M, int64_t H, int64_t W) { return M * 32 >= H * W; }

// Planes a caller already stores channels-last ([N, 3, C, H, W] sizes over [N, 3, H, W, C]
// memory, e.g. planes.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)).
inline bool is_channels_last_strided(const at::Tensor& planes) {
  return planes.dim() == 5 && planes.permute({0, 1, 3, 4, 2}).is_contiguous();
}

// Such planes are read in place whatever M is: the channels-last view costs nothing.
inline bool use_channels_last(const at::Tensor& planes, int64_t M) {
  return is_channels_last_strided(planes) || use_channels_last(M, planes.size(3), planes.size(4));
}

inline void check_sample_triplane(const at::Tensor& planes, const at::Tensor& points,
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
  check_float(planes, "planes");
  check_float(points, "points");
  check_same_dtype(planes, "planes", points, "points");
  check_same_device(planes, "planes", points, "points");
  TORCH_CHECK(box_warp > 0, "nofa: box_warp must be > 0, got ", box_warp);
}

}  // namespace nofa
