// composite_rays_merged: host-side argument checks.
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "checks.h"
#include "composite_rays.h"

namespace nofa {

// One sample set: colors [N, R, S, C], densities and depths [N, R, S, 1], same dtype /
// device (float16 / bfloat16 colours with float32 densities and depths when half_colors).
// `set` is "a" or "b" (the argument names are colors_a, densities_b, ...).
inline void check_merged_set(const at::Tensor& colors, const at::Tensor& densities,
                             const at::Tensor& depths, const std::string& set, bool half_colors) {
  const std::string c = "colors_" + set, d = "densities_" + set, z = "depths_" + set;
  check_dim(colors, 4, c.c_str(), "[N, R, S, C]");
  check_dim(densities, 4, d.c_str(), "[N, R, S, 1]");
  check_dim(depths, 4, z.c_str(), "[N, R, S, 1]");
  TORCH_CHECK(densities.size(3) == 1, "nofa: ", d, " must have shape [N, R, S, 1], got ",
              shape_str(densities));
  TORCH_CHECK(depths.size(3) == 1, "nofa: ", z, " must have shape [N, R, S, 1], got ",
              shape_str(depths));
  for (int i = 0; i < 3; ++i) {
    TORCH_CHECK(densities.size(i) == colors.size(i) && depths.size(i) == colors.size(i),
                "nofa: ", c, ", ", d, " and ", z, " must agree in N, R, S, got ", c, " ",
                shape_str(colors), ", ", d, " ", shape_str(densities), ", ", z, " ",
                shape_str(depths));
  }
  check_sample_dtypes(colors, c.c_str(), densities, d.c_str(), depths, z.c_str(), half_colors);
  check_same_device(colors, c.c_str(), densities, d.c_str());
  check_same_device(colors, c.c_str(), depths, z.c_str());
}

inline void check_composite_rays_merged(const at::Tensor& colors_a, const at::Tensor& densities_a,
                                        const at::Tensor& depths_a, const at::Tensor& colors_b,
                                        const at::Tensor& densities_b, const at::Tensor& depths_b,
                                        bool half_colors = false) {
  check_merged_set(colors_a, densities_a, depths_a, "a", half_colors);
  check_merged_set(colors_b, densities_b, depths_b, "b", half_colors);
  TORCH_CHECK(colors_a.size(0) == colors_b.size(0) && colors_a.size(1) == colors_b.size(1) &&
                  colors_a.size(3) == colors_b.size(3),
              "nofa: colors_a and colors_b must agree in N, R, C, got ", shape_str(colors_a),
              " and ", shape_str(colors_b));
  TORCH_CHECK(colors_a.size(2) + colors_b.size(2) >= 2,
              "nofa: composite_rays_merged needs S_a + S_b >= 2 samples per ray, got colors_a ",
              shape_str(colors_a), ", colors_b ", shape_str(colors_b));
  check_same_dtype(colors_a, "colors_a", colors_b, "colors_b");
  check_same_device(colors_a, "colors_a", colors_b, "colors_b");
}

}  // namespace nofa
