// Launchers of the composite_rays and composite_rays_merged CUDA kernels (docs/composite_rays.md):
// the kernels, and how they split the work, are in cuda/composite_rays_device.h (device code
// only, so that tests/cpp/test_composite_emulated.cpp can run the same source on the CPU).
// Raw pointers, no torch headers; declared, with the layouts they expect, in
// cuda/composite_rays_cuda.cpp, which calls them.
#include "cuda/composite_rays_device.h"

namespace nofa {
namespace {

inline unsigned int blocks_for(int64_t n) {
  return static_cast<unsigned int>((n + kThreads - 1) / kThreads);
}

}  // namespace

template <typename T>
void launch_composite_bound_grads(const T* depths, T* grad_depths, int64_t n, const T* lo,
                                  const T* hi, const T* totals, const int64_t* counts,
                                  cudaStream_t stream) {
  if (n == 0) return;
  bound_grads_kernel<T>
      <<<blocks_for(n), kThreads, 0, stream>>>(depths, grad_depths, n, lo, hi, totals, counts);
}

template <typename T, typename P>
void launch_composite_rays_forward(const ColorRows<const P>& colors, const T* densities_t,
                                   const T* depths_t, const T* lo, const T* hi, T* features,
                                   T* depth, T* weights_t, int64_t rays, int64_t S, int64_t C,
                                   bool white_back, cudaStream_t stream) {
  if (rays == 0) return;
  weights_kernel<T><<<blocks_for(rays), kThreads, 0, stream>>>(densities_t, depths_t, lo, hi, depth,
                                                               weights_t, rays, S);
  if (rays * C > 0) {
    features_kernel<T, P><<<blocks_for(rays * C), kThreads, 0, stream>>>(
        colors, weights_t, features, rays, S, C, white_back);
  }
}

template <typename T, typename P>
void launch_composite_rays_backward(const T* grad_features, const T* grad_features_sum,
                                    const T* grad_depth, const T* grad_weights_t,
                                    const ColorRows<const P>& colors, const T* densities_t,
                                    const T* depths_t, const T* lo, const T* hi, T* scratch_e_t,
                                    T* scratch_w, const ColorRows<P>& grad_colors,
                                    T* grad_densities_t, T* grad_depths_t, T* bounds, int64_t rays,
                                    int64_t S, int64_t C, bool white_back, cudaStream_t stream) {
  if (rays == 0) return;
  // With C == 0 the features are empty: treat grad_features as absent.
  const T* gf = C > 0 ? grad_features : nullptr;
  if (gf) {
    const int L = dot_lanes(C);
    sample_dot_kernel<T, P>
        <<<blocks_for(rays * S * L), kThreads, 0, stream>>>(gf, colors, scratch_e_t, rays, S, C, L);
  }
  ray_backward_kernel<T><<<blocks_for(rays), kThreads, 0, stream>>>(
      gf && white_back ? grad_features_sum : nullptr, grad_depth, grad_weights_t, densities_t,
      depths_t, lo, hi, gf ? scratch_e_t : nullptr, scratch_w, grad_densities_t, grad_depths_t,
      bounds, rays, S);
  if ((grad_colors.a || grad_colors.b) && gf) {
    color_grad_kernel<T, P>
        <<<blocks_for(rays * S * C), kThreads, 0, stream>>>(gf, scratch_w, grad_colors, rays, S, C);
  }
}

template <typename T>
void launch_merge_sets(const T* densities_a_t, const T* depths_a_t, const T* densities_b_t,
                       const T* depths_b_t, int64_t rays, int64_t Sa, int64_t Sb, T* densities_t,
                       T* depths_t, int32_t* src, cudaStream_t stream) {
  if (rays == 0) return;
  merge_kernel<T><<<blocks_for(rays), kThreads, 0, stream>>>(densities_a_t, depths_a_t,
                                                             densities_b_t, depths_b_t, rays, Sa,
                                                             Sb, densities_t, depths_t, src);
}

template <typename T>
void launch_scatter_sets(const T* values, const int32_t* src, int64_t rays, int64_t Sa, int64_t Sb,
                         T* out_a, T* out_b, cudaStream_t stream) {
  if (rays * (Sa + Sb) == 0) return;
  scatter_kernel<T><<<blocks_for(rays * (Sa + Sb)), kThreads, 0, stream>>>(values, src, rays, Sa,
                                                                           Sb, out_a, out_b);
}

#define NOFA_INSTANTIATE_COMPOSITE(T, P)                                                           \
  template void launch_composite_rays_forward<T, P>(const ColorRows<const P>&, const T*, const T*, \
                                                    const T*, const T*, T*, T*, T*, int64_t,       \
                                                    int64_t, int64_t, bool, cudaStream_t);         \
  template void launch_composite_rays_backward<T, P>(                                              \
      const T*, const T*, const T*, const T*, const ColorRows<const P>&, const T*, const T*,       \
      const T*, const T*, T*, T*, const ColorRows<P>&, T*, T*, T*, int64_t, int64_t, int64_t,      \
      bool, cudaStream_t);
#define NOFA_INSTANTIATE(T)                                                                     \
  template void launch_composite_bound_grads<T>(const T*, T*, int64_t, const T*, const T*,      \
                                                const T*, const int64_t*, cudaStream_t);        \
  template void launch_merge_sets<T>(const T*, const T*, const T*, const T*, int64_t, int64_t,  \
                                     int64_t, T*, T*, int32_t*, cudaStream_t);                  \
  template void launch_scatter_sets<T>(const T*, const int32_t*, int64_t, int64_t, int64_t, T*, \
                                       T*, cudaStream_t);
NOFA_INSTANTIATE(float)
NOFA_INSTANTIATE(double)
NOFA_INSTANTIATE_COMPOSITE(float, float)
NOFA_INSTANTIATE_COMPOSITE(double, double)
NOFA_INSTANTIATE_COMPOSITE(float, __half)
NOFA_INSTANTIATE_COMPOSITE(float, __nv_bfloat16)
#undef NOFA_INSTANTIATE
#undef NOFA_INSTANTIATE_COMPOSITE

}  // namespace nofa
