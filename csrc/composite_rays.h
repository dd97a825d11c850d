// composite_rays: host-side argument checks and helpers shared by the CPU and CUDA glue.
#pragma once
#include <ATen/ATen.h>

#include <optional>

#include "checks.h"

namespace nofa {

// float16 / bfloat16 colours: what torch.autocast("cuda") hands the CUDA kernels, with
// float32 densities and depths.
inline bool is_half_colors(const at::Tensor& colors) {
  return colors.scalar_type() == at::kHalf || colors.scalar_type() == at::kBFloat16;
}

// The dtypes of one sample set: float32 / float64 throughout, or (half_colors, CUDA only)
// float16 / bfloat16 colours with float32 densities and depths.
inline void check_sample_dtypes(const at::Tensor& colors, const char* c,
                                const at::Tensor& densities, const char* d,
                                const at::Tensor& depths, const char* z, bool half_colors) {
  if (half_colors && is_half_colors(colors)) {
    TORCH_CHECK(densities.scalar_type() == at::kFloat, "nofa: with ", colors.scalar_type(), " ", c,
                ", ", d, " must be float32, got ", densities.scalar_type());
    TORCH_CHECK(depths.scalar_type() == at::kFloat, "nofa: with ", colors.scalar_type(), " ", c,
                ", ", z, " must be float32, got ", depths.scalar_type());
    return;
  }
  check_float(colors, c);
  check_same_dtype(colors, c, densities, d);
  check_same_dtype(colors, c, depths, z);
}

// half_colors: accept float16 / bfloat16 colours (the CUDA kernels; the CPU ones do not).
inline void check_composite_rays(const at::Tensor& colors, const at::Tensor& densities,
                                 const at::Tensor& depths, bool half_colors = false) {
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
  TORCH_CHECK(colors.size(2) >= 2,
              "nofa: composite_rays needs S >= 2 samples per ray (one "
              "interval), got colors ",
              shape_str(colors));
  check_sample_dtypes(colors, "colors", densities, "densities", depths, "depths", half_colors);
  check_same_device(colors, "colors", densities, "densities");
  check_same_device(colors, "colors", depths, "depths");
}

// A cotangent of one output, contiguous in like's dtype (the outputs' dtype: that of the
// densities), or an undefined tensor when absent (None from autograd) or empty.
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
