// composite_rays CUDA kernels. The transmittance is a sequential scan along each ray, so
// the per-ray scalar work runs one thread per ray (common/composite.h, the same code as
// the CPU); the channel work runs one thread per (ray, channel) or (ray, sample, channel)
// so that neighbouring threads read neighbouring channels. The backward keeps T_k, then
// w_k, in a [kScratch * K, rays] scratch: thread r touches column r, so those accesses coalesce.
#include "common/composite.h"
#include "cuda/composite_rays_kernels.h"

namespace nofa {
namespace {

constexpr int kThreads = 256;

inline unsigned int blocks_for(int64_t n) {
  return static_cast<unsigned int>((n + kThreads - 1) / kThreads);
}

__device__ __forceinline__ int64_t thread_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

template <typename T>
__global__ void weights_kernel(const T* __restrict__ dens, const T* __restrict__ z,
                               const T* __restrict__ lo, const T* __restrict__ hi,
                               T* __restrict__ depth, T* __restrict__ weights, int64_t rays,
                               int64_t S) {
  const int64_t r = thread_index();
  if (r >= rays) return;
  T wsum, zsum;
  const T* zr = z + r * S;
  ray_weights(zr, S - 1, AlphaFromInputs<T>{dens + r * S, zr}, weights + r * (S - 1), int64_t(1),
              wsum, zsum);
  depth[r] = ray_depth(zsum, wsum, *lo, *hi);
}

// features[c] = sum_s colors[s, c] (w_{s-1} + w_s) / 2, then the background and x*2-1.
template <typename T>
__global__ void features_kernel(const T* __restrict__ col, const T* __restrict__ weights,
                                T* __restrict__ feat, int64_t rays, int64_t S, int64_t C,
                                bool white) {
  const int64_t idx = thread_index();
  if (idx >= rays * C) return;
  const int64_t c = idx % C, r = idx / C, K = S - 1;
  const T* w = weights + r * K;
  const T* cr = col + r * S * C + c;
  T acc = T(0), wsum = T(0);
  for (int64_t s = 0; s < S; ++s) {
    const T u = ((s > 0 ? w[s - 1] : T(0)) + (s < K ? w[s] : T(0))) / T(2);
    acc += u * cr[s * C];
    if (s < K) wsum += w[s];
  }
  if (white) acc = acc + T(1) - wsum;
  feat[idx] = acc * T(2) - T(1);
}

// e[r, s] = sum_c 2 * grad_features[r, c] * colors[r, s, c].
template <typename T>
__global__ void sample_dot_kernel(const T* __restrict__ gf, const T* __restrict__ col,
                                  T* __restrict__ e, int64_t rays, int64_t S, int64_t C) {
  const int64_t idx = thread_index();
  if (idx >= rays * S) return;
  const int64_t r = idx / S;
  const T* g = gf + r * C;
  const T* cs = col + idx * C;
  T acc = T(0);
  for (int64_t c = 0; c < C; ++c) acc += (T(2) * g[c]) * cs[c];
  e[idx] = acc;
}

template <typename T>
__global__ void ray_backward_kernel(const T* __restrict__ gf, const T* __restrict__ gz,
                                    const T* __restrict__ gw, const T* __restrict__ dens,
                                    const T* __restrict__ z, const T* __restrict__ lo,
                                    const T* __restrict__ hi, const T* __restrict__ e,
                                    T* __restrict__ wbuf, T* __restrict__ gden,
                                    T* __restrict__ gdep, T* __restrict__ bounds, int64_t rays,
                                    int64_t S, int64_t C, bool white) {
  const int64_t r = thread_index();
  if (r >= rays) return;
  const int64_t K = S - 1;
  RayCotangents<T> ct{gf ? e + r * S : nullptr, gw ? gw + r * K : nullptr, T(0),
                      gz ? gz[r] : T(0), *lo, *hi};
  if (gf && white) {
    T total = T(0);
    for (int64_t c = 0; c < C; ++c) total += T(2) * gf[r * C + c];
    ct.gw_const = -total;
  }
  T glo, ghi;
  fill_intervals(dens + r * S, z + r * S, K, wbuf + r, rays);
  ray_backward(z + r * S, K, ct, wbuf + r, rays, gden + r * S, gdep ? gdep + r * S : nullptr, glo,
               ghi);
  if (bounds) {
    bounds[2 * r] = glo;
    bounds[2 * r + 1] = ghi;
  }
}

// grad_colors[r, s, c] = 2 * grad_features[r, c] * (w_{s-1} + w_s) / 2.
template <typename T>
__global__ void color_grad_kernel(const T* __restrict__ gf, const T* __restrict__ wbuf,
                                  T* __restrict__ gcol, int64_t rays, int64_t S, int64_t C) {
  const int64_t idx = thread_index();
  if (idx >= rays * S * C) return;
  const int64_t c = idx % C, rs = idx / C, s = rs % S, r = rs / S, K = S - 1;
  // Field kTrans of the scratch holds the weights after the ray kernel.
  const T u = ((s > 0 ? wbuf[(kTrans * K + s - 1) * rays + r] : T(0)) +
               (s < K ? wbuf[(kTrans * K + s) * rays + r] : T(0))) / T(2);
  gcol[idx] = u * (T(2) * gf[r * C + c]);
}

}  // namespace

template <typename T>
void launch_composite_rays_forward(const T* colors, const T* densities, const T* depths,
                                   const T* lo, const T* hi, T* features, T* depth, T* weights,
                                   int64_t rays, int64_t S, int64_t C, bool white_back,
                                   cudaStream_t stream) {
  if (rays == 0) return;
  weights_kernel<T><<<blocks_for(rays), kThreads, 0, stream>>>(densities, depths, lo, hi, depth,
                                                                weights, rays, S);
  if (rays * C > 0) {
    features_kernel<T><<<blocks_for(rays * C), kThreads, 0, stream>>>(colors, weights, features,
                                                                       rays, S, C, white_back);
  }
}

template <typename T>
void launch_composite_rays_backward(const T* grad_features, const T* grad_depth,
                                    const T* grad_weights, const T* colors, const T* densities,
                                    const T* depths, const T* lo, const T* hi, T* scratch_e,
                                    T* scratch_w, T* grad_colors, T* grad_densities,
                                    T* grad_depths, T* bounds, int64_t rays, int64_t S, int64_t C,
                                    bool white_back, cudaStream_t stream) {
  if (rays == 0) return;
  if (grad_features && C > 0) {
    sample_dot_kernel<T><<<blocks_for(rays * S), kThreads, 0, stream>>>(grad_features, colors,
                                                                         scratch_e, rays, S, C);
  }
  // With C == 0 the features are empty: treat grad_features as absent.
  const T* gf = C > 0 ? grad_features : nullptr;
  ray_backward_kernel<T><<<blocks_for(rays), kThreads, 0, stream>>>(
      gf, grad_depth, grad_weights, densities, depths, lo, hi, scratch_e, scratch_w,
      grad_densities, grad_depths, bounds, rays, S, C, white_back);
  if (grad_colors && gf) {
    color_grad_kernel<T><<<blocks_for(rays * S * C), kThreads, 0, stream>>>(gf, scratch_w,
                                                                             grad_colors, rays, S, C);
  }
}

#define NOFA_INSTANTIATE(T)                                                                   \
  template void launch_composite_rays_forward<T>(const T*, const T*, const T*, const T*,      \
                                                 const T*, T*, T*, T*, int64_t, int64_t,      \
                                                 int64_t, bool, cudaStream_t);                \
  template void launch_composite_rays_backward<T>(const T*, const T*, const T*, const T*,     \
                                                  const T*, const T*, const T*, const T*, T*, \
                                                  T*, T*, T*, T*, T*, int64_t, int64_t,       \
                                                  int64_t, bool, cudaStream_t);
NOFA_INSTANTIATE(float)
NOFA_INSTANTIATE(double)
#undef NOFA_INSTANTIATE

}  // namespace nofa
