// torch.autocast("cpu") for every nofa op (docs/ops.md, "Autocast"): the CPU kernels compute
// in float32 / float64, so half-precision arguments are cast to float32 and autocast is off
// inside the kernels (their own ATen calls stay in the inputs' dtype).
#include "autocast_float32.h"

namespace nofa {

TORCH_LIBRARY_IMPL(nofa, AutocastCPU, m) {
  constexpr auto K = c10::DispatchKey::AutocastCPU;
  for (const char* name :
       {"sample_triplane", "sample_triplane_backward", "channels_last_planes", "composite_rays",
        "composite_rays_backward", "composite_rays_merged", "composite_rays_merged_backward",
        "deform_points", "deform_points_backward", "decode_triplane", "decode_triplane_backward"}) {
    m.impl(name, autocast_float32<K, true>());
  }
}

}  // namespace nofa
