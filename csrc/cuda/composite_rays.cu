// composite_rays and composite_rays_merged CUDA kernels (docs/composite_rays.md). The
// transmittance is a sequential scan along each ray, so
// the per-ray scalar work runs one thread per ray (common/composite.h, the same code as
// the CPU); the channel work runs one thread per (ray, channel) or (ray, sample, channel)
// so that neighbouring threads read neighbouring channels. The backward keeps T_k, then
// w_k, in a [kScratch * K, rays] scratch: thread r touches column r, so those accesses coalesce.
// composite_rays_merged runs the same kernels on a per-ray merged copy of the two sets'
// densities and depths, reading (and writing the gradients of) colour rows in place
// through ColorRows, then scatters the density / depth gradients back to the sets.
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
__global__ void features_kernel(const ColorRows<const T> col, const T* __restrict__ weights,
                                T* __restrict__ feat, int64_t rays, int64_t S, int64_t C,
                                bool white) {
  const int64_t idx = thread_index();
  if (idx >= rays * C) return;
  const int64_t c = idx % C, r = idx / C, K = S - 1;
  const T* w = weights + r * K;
  T acc = T(0), wsum = T(0);
  for (int64_t s = 0; s < S; ++s) {
    const T u = ((s > 0 ? w[s - 1] : T(0)) + (s < K ? w[s] : T(0))) / T(2);
    acc += u * col.row(r, s, S)[c];
    if (s < K) wsum += w[s];
  }
  if (white) acc = acc + T(1) - wsum;
  feat[idx] = acc * T(2) - T(1);
}

// e[r, s] = sum_c 2 * grad_features[r, c] * colors[r, s, c].
template <typename T>
__global__ void sample_dot_kernel(const T* __restrict__ gf, const ColorRows<const T> col,
                                  T* __restrict__ e, int64_t rays, int64_t S, int64_t C) {
  const int64_t idx = thread_index();
  if (idx >= rays * S) return;
  const int64_t r = idx / S, s = idx - r * S;
  const T* g = gf + r * C;
  const T* cs = col.row(r, s, S);
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
                                  const ColorRows<T> gcol, int64_t rays, int64_t S, int64_t C) {
  const int64_t idx = thread_index();
  if (idx >= rays * S * C) return;
  const int64_t c = idx % C, rs = idx / C, s = rs % S, r = rs / S, K = S - 1;
  // Field kTrans of the scratch holds the weights after the ray kernel.
  const T u = ((s > 0 ? wbuf[(kTrans * K + s - 1) * rays + r] : T(0)) +
               (s < K ? wbuf[(kTrans * K + s) * rays + r] : T(0))) / T(2);
  gcol.row(r, s, S)[c] = u * (T(2) * gf[r * C + c]);
}

// composite_rays_merged: the two-pointer merge of ray r's two sorted sets (ties: set a
// first, a stable sort of the concatenation), as cpu/composite_rays_merged.cpp does.
template <typename T>
__global__ void merge_kernel(const T* __restrict__ da, const T* __restrict__ za,
                             const T* __restrict__ db, const T* __restrict__ zb, int64_t rays,
                             int64_t Sa, int64_t Sb, T* __restrict__ dm, T* __restrict__ zm,
                             int32_t* __restrict__ src) {
  const int64_t r = thread_index();
  if (r >= rays) return;
  const int64_t S = Sa + Sb;
  const T *dar = da + r * Sa, *zar = za + r * Sa, *dbr = db + r * Sb, *zbr = zb + r * Sb;
  T *dmr = dm + r * S, *zmr = zm + r * S;
  int32_t* sr = src + r * S;
  int64_t i = 0, j = 0, s = 0;
  while (i < Sa && j < Sb) {
    if (!(zbr[j] < zar[i])) {  // a tie takes set a first
      dmr[s] = dar[i], zmr[s] = zar[i], sr[s++] = static_cast<int32_t>(i++);
    } else {
      dmr[s] = dbr[j], zmr[s] = zbr[j], sr[s++] = static_cast<int32_t>(Sa + j++);
    }
  }
  for (; i < Sa; ++i) dmr[s] = dar[i], zmr[s] = zar[i], sr[s++] = static_cast<int32_t>(i);
  for (; j < Sb; ++j) dmr[s] = dbr[j], zmr[s] = zbr[j], sr[s++] = static_cast<int32_t>(Sa + j);
}

// Merged-order values v [rays, S] back to the rows of set a / b they came from.
template <typename T>
__global__ void scatter_kernel(const T* __restrict__ v, const int32_t* __restrict__ src,
                               int64_t rays, int64_t Sa, int64_t Sb, T* __restrict__ out_a,
                               T* __restrict__ out_b) {
  const int64_t idx = thread_index();
  const int64_t S = Sa + Sb;
  if (idx >= rays * S) return;
  const int64_t r = idx / S, i = src[idx];
  if (i < Sa) {
    out_a[r * Sa + i] = v[idx];
  } else {
    out_b[r * Sb + (i - Sa)] = v[idx];
  }
}

// The clamp bounds' gradients: totals [2] (sums of the per-ray dL/d lo, dL/d hi) shared
// between the counts [2] elements equal to lo / hi (common/composite.h, as on the CPU).
template <typename T>
__global__ void bound_grads_kernel(const T* __restrict__ z, T* __restrict__ gdep, int64_t n,
                                   const T* __restrict__ lo, const T* __restrict__ hi,
                                   const T* __restrict__ totals, const int64_t* __restrict__ counts) {
  const int64_t idx = thread_index();
  if (idx >= n) return;
  const T v = z[idx];
  if (v == *lo) gdep[idx] += bound_share(totals[0], counts[0]);
  if (v == *hi) gdep[idx] += bound_share(totals[1], counts[1]);
}

}  // namespace

template <typename T>
void launch_composite_bound_grads(const T* depths, T* grad_depths, int64_t n, const T* lo,
                                  const T* hi, const T* totals, const int64_t* counts,
                                  cudaStream_t stream) {
  if (n == 0) return;
  bound_grads_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(depths, grad_depths, n, lo, hi,
                                                                 totals, counts);
}

template <typename T>
void launch_composite_rays_forward(const ColorRows<const T>& colors, const T* densities,
                                   const T* depths, const T* lo, const T* hi, T* features,
                                   T* depth, T* weights, int64_t rays, int64_t S, int64_t C,
                                   bool white_back, cudaStream_t stream) {
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
                                    const T* grad_weights, const ColorRows<const T>& colors,
                                    const T* densities, const T* depths, const T* lo, const T* hi,
                                    T* scratch_e, T* scratch_w, const ColorRows<T>& grad_colors,
                                    T* grad_densities, T* grad_depths, T* bounds, int64_t rays,
                                    int64_t S, int64_t C, bool white_back, cudaStream_t stream) {
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
  if ((grad_colors.a || grad_colors.b) && gf) {
    color_grad_kernel<T><<<blocks_for(rays * S * C), kThreads, 0, stream>>>(gf, scratch_w,
                                                                             grad_colors, rays, S, C);
  }
}

template <typename T>
void launch_merge_sets(const T* densities_a, const T* depths_a, const T* densities_b,
                       const T* depths_b, int64_t rays, int64_t Sa, int64_t Sb, T* densities,
                       T* depths, int32_t* src, cudaStream_t stream) {
  if (rays == 0) return;
  merge_kernel<T><<<blocks_for(rays), kThreads, 0, stream>>>(densities_a, depths_a, densities_b,
                                                              depths_b, rays, Sa, Sb, densities,
                                                              depths, src);
}

template <typename T>
void launch_scatter_sets(const T* values, const int32_t* src, int64_t rays, int64_t Sa,
                         int64_t Sb, T* out_a, T* out_b, cudaStream_t stream) {
  if (rays * (Sa + Sb) == 0) return;
  scatter_kernel<T><<<blocks_for(rays * (Sa + Sb)), kThreads, 0, stream>>>(values, src, rays, Sa,
                                                                            Sb, out_a, out_b);
}

#define NOFA_INSTANTIATE(T)                                                                    \
  template void launch_composite_rays_forward<T>(const ColorRows<const T>&, const T*, const T*, \
                                                 const T*, const T*, T*, T*, T*, int64_t,       \
                                                 int64_t, int64_t, bool, cudaStream_t);         \
  template void launch_composite_rays_backward<T>(                                             \
      const T*, const T*, const T*, const ColorRows<const T>&, const T*, const T*, const T*,   \
      const T*, T*, T*, const ColorRows<T>&, T*, T*, T*, int64_t, int64_t, int64_t, bool,      \
      cudaStream_t);                                                                           \
  template void launch_composite_bound_grads<T>(const T*, T*, int64_t, const T*, const T*,     \
                                                const T*, const int64_t*, cudaStream_t);       \
  template void launch_merge_sets<T>(const T*, const T*, const T*, const T*, int64_t, int64_t, \
                                     int64_t, T*, T*, int32_t*, cudaStream_t);                 \
  template void launch_scatter_sets<T>(const T*, const int32_t*, int64_t, int64_t, int64_t, T*, \
                                       T*, cudaStream_t);
NOFA_INSTANTIATE(float)
NOFA_INSTANTIATE(double)
#undef NOFA_INSTANTIATE

}  // namespace nofa
