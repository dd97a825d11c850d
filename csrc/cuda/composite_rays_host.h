// Host helpers shared by the composite_rays and composite_rays_merged CUDA glue: the
// sample-major copies the kernels read (csrc/cuda/composite_rays_kernels.h, "Layouts") and
// the dispatch over the colour type (float32 / float64, or float16 / bfloat16 colours with
// float32 everything else under autocast).
#pragma once
#include <ATen/ATen.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace nofa {

// A [N, R, S, 1] (or [N, R, K, 1]) tensor as a contiguous sample-major [S, rays] copy: ATen's
// transposing copy, so that the per-ray kernels' accesses coalesce.
inline at::Tensor sample_major(const at::Tensor& t, int64_t rays, int64_t S) {
  return t.reshape({rays, S}).t().contiguous();
}

// A sample-major [S, rays] tensor back to a contiguous [rays, S] one.
inline at::Tensor ray_major(const at::Tensor& t) { return t.t().contiguous(); }

// A tensor's data as P (e.g. at::Half storage as __half), or null when empty / undefined.
template <typename P>
P* data_as(const at::Tensor& t) {
  return t.defined() && t.numel() > 0 ? static_cast<P*>(t.data_ptr()) : nullptr;
}

// Calls f.template operator()<T, P>(): T the accumulation type, P the colours' type.
template <typename F>
void dispatch_colour_types(at::ScalarType colours, const char* name, F&& f) {
  switch (colours) {
    case at::kFloat:
      return f.template operator()<float, float>();
    case at::kDouble:
      return f.template operator()<double, double>();
    case at::kHalf:
      return f.template operator()<float, __half>();
    case at::kBFloat16:
      return f.template operator()<float, __nv_bfloat16>();
    default:
      TORCH_CHECK(false, "nofa: ", name,
                  ": colors must be float32, float64, float16 or bfloat16, got ", colours);
  }
}

}  // namespace nofa
