// composite_rays: host-side argument checks and helpers shared by the CPU and CUDA glue.
#pragma once
#include <ATen/ATen.h>

#include <optional>

#include "checks.h"

namespace nofa {

inline void check_composite_rays(const at::Tensor& colors, const at::Tensor& densities,
                                 const at::Tensor& depths) {
  check_dim(colors, 4, "colors", "[N, R, S, C]");
  check_dim(densities, 4, "densities", "[N, R, S, 1]");
  check_dim(depths, 4, "depths", "[N, R, S, 1]");
  TORCH_CHECK(densities.size(3) == 1, "nofa: densities must have shape [N, R, S, 1], got ",
              shape_str(densities));
  TORCH_CHECK(depths.size(3) == 1, "nofa: depths must have shape [N, R, S, 1], got ",
              shape_str(depths));
  for (int d = 0; d < 3; ++d) {
    TORCH_CHECK(densities.size(d) == colors.size(d) && depths.size(d) == colors.size(d),
                "nofa: colors, densities and depths must agree in N, R, S, got colors ",
                shape_str(colors), ", densities ", shape_str(densities), ", depths ",
                shape_str(depths));
  }
  TORCH_CHECK(colors.size(2) >= 2, "nofa: composite_rays needs S >= 2 samples per ray (one "
              "interval), got colors ", shape_str(colors));
  check_float(colors, "colors");
  check_same_dtype(colors, "colors", densities, "densities");
  check_same_dtype(colors, "colors", depths, "depths");
  check_same_device(colors, "colors", densities, "densities");
  check_same_device(colors, "colors", depths, "depths");
}

// A cotangent of one output, contiguous in the inputs' dtype, or an undefined tensor when
// absent (None from autograd) or empty.
inline at::Tensor cotangent(const std::optional<at::Tensor>& g, const at::Tensor& like,
                            at::IntArrayRef shape, const char* name) {
  if (!g.has_value() || !g->defined()) return at::Tensor();
  TORCH_CHECK(g->sizes() == shape, "nofa: ", name, " must have shape ", shape, ", got ",
              shape_str(*g));
  check_same_device(*g, name, like, "colors");
  if (g->numel() == 0) return at::Tensor();
  return g->contiguous().to(like.scalar_type());
}

// The depth output is clamped to [min(depths), max(depths)], so a ray on a bound sends its
// share of the depth cotangent to the elements that hold the minimum / maximum; like
// torch.min / torch.max, it is shared evenly between tied elements. bounds: [rays, 2]
// per-ray (dL/d lo, dL/d hi) from the kernel.
inline void add_bound_grads(at::Tensor& grad_depths, const at::Tensor& depths, const at::Tensor& lo,
                            const at::Tensor& hi, const at::Tensor& bounds) {
  const auto total = bounds.sum(0);
  const auto at_lo = depths == lo;
  const auto at_hi = depths == hi;
  grad_depths.add_(at_lo.to(depths.scalar_type()) * (total[0] / at_lo.sum()));
  grad_depths.add_(at_hi.to(depths.scalar_type()) * (total[1] / at_hi.sum()));
}

}  // namespace nofa
