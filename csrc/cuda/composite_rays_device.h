#pragma once
// composite_rays and composite_rays_merged CUDA kernels (docs/composite_rays.md). The
// transmittance is a sequential scan along each ray, so the per-ray scalar work runs one
// thread per ray (common/composite.h, the same code as the CPU) on sample-major copies
// ([S, rays], made by the host with ATen): thread r walks column r with stride `rays`, so
// a warp's loads and stores at one sample touch 32 neighbouring addresses (coalesced)
// instead of 32 rows S apart. The backward's per-interval scratch has the same
// [field * K + k][rays] layout. The channel work runs one thread per (ray, channel) or
// (ray, sample, channel), neighbouring threads on neighbouring channels; the colour dot
// product e[r, s] = sum_c 2 g[r, c] colors[r, s, c] runs one group of L lanes (L = C
// rounded up to a power of two, at most 32) per (ray, sample) with a shuffle reduction.
// Colours may be float16 / bfloat16 (autocast): they are read and their gradient written
// in that type, everything else is float32 with float32 accumulation.
// composite_rays_merged runs the same kernels on a per-ray merged copy of the two sets'
// densities and depths, reading (and writing the gradients of) colour rows in place
// through ColorRows, then scatters the density / depth gradients back to the sets.
//
// Device code only, no CUDA runtime calls: cuda/composite_rays.cu launches the kernels, and
// tests/cpp/test_composite_emulated.cpp runs this same source on CPU threads (with stand-ins
// for the CUDA built-ins, for to_float / from_float and for the half colour types)
// against the per-ray CPU math. Under nvcc the half types come from cuda/common/half_types.h.
#include <cstdint>
#include <type_traits>

#include "common/composite.h"
#include "cuda/common/color_rows.h"
#if defined(__CUDACC__)
#include "cuda/common/half_types.h"
#endif

namespace nofa {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ int64_t thread_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

// A colour value (type P) in the accumulation type T, and back.
template <typename T, typename P>
__device__ __forceinline__ T colour_in(P v) {
  return static_cast<T>(to_float(v));
}

template <typename P, typename T>
__device__ __forceinline__ P colour_out(T v) {
  if constexpr (std::is_same_v<P, T>) {
    return v;
  } else {
    return from_float<P>(v);
  }
}

// Lanes per (ray, sample) group of sample_dot_kernel: C rounded up to a power of two, at
// most a warp (C > 32 loops). A power of two <= 32 divides kThreads, so a group never
// straddles a warp.
inline int dot_lanes(int64_t C) {
  int L = 1;
  while (L < C && L < 32) L *= 2;
  return L;
}

// Depth and weights of ray r: densities / depths [S, rays], weights [K, rays].
template <typename T>
__global__ void weights_kernel(const T* __restrict__ dens_t, const T* __restrict__ z_t,
                               const T* __restrict__ lo, const T* __restrict__ hi,
                               T* __restrict__ depth, T* __restrict__ weights_t, int64_t rays,
                               int64_t S) {
  const int64_t r = thread_index();
  if (r >= rays) return;
  T wsum, zsum;
  ray_weights(z_t + r, S - 1, AlphaFromInputs<T>{dens_t + r, z_t + r, rays}, weights_t + r, rays,
              wsum, zsum);
  depth[r] = ray_depth(zsum, wsum, *lo, *hi);
}

// features[c] = sum_s colors[s, c] (w_{s-1} + w_s) / 2, then the background and x*2-1.
// Thread (r, c); weights [K, rays].
template <typename T, typename P>
__global__ void features_kernel(const ColorRows<const P> col, const T* __restrict__ weights_t,
                                T* __restrict__ feat, int64_t rays, int64_t S, int64_t C,
                                bool white) {
  const int64_t idx = thread_index();
  if (idx >= rays * C) return;
  const int64_t c = idx % C, r = idx / C, K = S - 1;
  T acc = T(0), wsum = T(0), wprev = T(0);  // wprev: w_{s-1}
  for (int64_t s = 0; s < S; ++s) {
    const T wcur = s < K ? weights_t[s * rays + r] : T(0);
    const T u = (wprev + wcur) / T(2);
    acc += u * colour_in<T>(col.row(r, s, S)[c]);
    if (s < K) wsum += wcur;
    wprev = wcur;
  }
  if (white) acc = acc + T(1) - wsum;
  feat[idx] = acc * T(2) - T(1);
}

// e_t[s, r] = sum_c 2 * grad_features[r, c] * colors[r, s, c]: group g = r * S + s of L
// lanes (dot_lanes), lane l summing channels l, l + L, ..., then a shuffle reduction within
// the group. Every thread of the grid reaches the shuffles (no early return), so the full
// mask is valid; threads past the last group add zeros and store nothing.
template <typename T, typename P>
__global__ void sample_dot_kernel(const T* __restrict__ gf, const ColorRows<const P> col,
                                  T* __restrict__ e_t, int64_t rays, int64_t S, int64_t C, int L) {
  const int64_t idx = thread_index();
  const int64_t g = idx / L;
  const int lane = static_cast<int>(idx - g * L);
  const bool active = g < rays * S;
  const int64_t r = active ? g / S : 0, s = active ? g - r * S : 0;
  T acc = T(0);
  if (active) {
    const T* gr = gf + r * C;
    const P* cs = col.row(r, s, S);
    for (int64_t c = lane; c < C; c += L) acc += (T(2) * gr[c]) * colour_in<T>(cs[c]);
  }
  for (int off = L / 2; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, off, L);
  if (active && lane == 0) e_t[s * rays + r] = acc;
}

// Backward of ray r (common/composite.h ray_backward with stride `rays`): every per-ray
// array is sample-major ([S, rays] or [K, rays]); bounds [2, rays].
template <typename T>
__global__ void ray_backward_kernel(const T* __restrict__ gf_sum, const T* __restrict__ gz,
                                    const T* __restrict__ gw_t, const T* __restrict__ dens_t,
                                    const T* __restrict__ z_t, const T* __restrict__ lo,
                                    const T* __restrict__ hi, const T* __restrict__ e_t,
                                    T* __restrict__ wbuf, T* __restrict__ gden_t,
                                    T* __restrict__ gdep_t, T* __restrict__ bounds, int64_t rays,
                                    int64_t S) {
  const int64_t r = thread_index();
  if (r >= rays) return;
  const int64_t K = S - 1;
  // With a white background every b_k also gets -sum_c g_rgb_c (gf_sum is null otherwise).
  const RayCotangents<T> ct{e_t ? e_t + r : nullptr,
                            gw_t ? gw_t + r : nullptr,
                            gf_sum ? -gf_sum[r] : T(0),
                            gz ? gz[r] : T(0),
                            *lo,
                            *hi};
  T glo, ghi;
  fill_intervals(dens_t + r, z_t + r, K, wbuf + r, rays);
  ray_backward(z_t + r, K, ct, wbuf + r, rays, gden_t + r, gdep_t ? gdep_t + r : nullptr, glo, ghi);
  if (bounds) {
    bounds[r] = glo;
    bounds[rays + r] = ghi;
  }
}

// grad_colors[r, s, c] = 2 * grad_features[r, c] * (w_{s-1} + w_s) / 2.
template <typename T, typename P>
__global__ void color_grad_kernel(const T* __restrict__ gf, const T* __restrict__ wbuf,
                                  const ColorRows<P> gcol, int64_t rays, int64_t S, int64_t C) {
  const int64_t idx = thread_index();
  if (idx >= rays * S * C) return;
  const int64_t c = idx % C, rs = idx / C, s = rs % S, r = rs / S, K = S - 1;
  // Field kTrans of the scratch holds the weights after the ray kernel.
  const T u = ((s > 0 ? wbuf[(kTrans * K + s - 1) * rays + r] : T(0)) +
               (s < K ? wbuf[(kTrans * K + s) * rays + r] : T(0))) /
              T(2);
  gcol.row(r, s, S)[c] = colour_out<P>(u * (T(2) * gf[r * C + c]));
}

// composite_rays_merged: the two-pointer merge of ray r's two sorted sets (ties: set a
// first, a stable sort of the concatenation), as cpu/composite_rays_merged.cpp does.
// Sample-major inputs [Sa, rays] / [Sb, rays] and outputs [Sa + Sb, rays] (coalesced);
// src [rays, Sa + Sb] stays row-major for ColorRows and the scatter.
template <typename T>
__global__ void merge_kernel(const T* __restrict__ da_t, const T* __restrict__ za_t,
                             const T* __restrict__ db_t, const T* __restrict__ zb_t, int64_t rays,
                             int64_t Sa, int64_t Sb, T* __restrict__ dm_t, T* __restrict__ zm_t,
                             int32_t* __restrict__ src) {
  const int64_t r = thread_index();
  if (r >= rays) return;
  const int64_t S = Sa + Sb;
  int32_t* sr = src + r * S;
  // Sample k of a sample-major array; only evaluated for k inside the set (a set with no
  // samples may have a null pointer).
  auto at = [rays, r](const T* p, int64_t k) -> T { return p[k * rays + r]; };
  auto put = [&](int64_t s, T d, T z, int64_t from) {
    dm_t[s * rays + r] = d;
    zm_t[s * rays + r] = z;
    sr[s] = static_cast<int32_t>(from);
  };
  int64_t i = 0, j = 0, s = 0;
  while (i < Sa && j < Sb) {
    const T zi = at(za_t, i), zj = at(zb_t, j);
    if (!(zj < zi)) {  // a tie takes set a first
      put(s++, at(da_t, i), zi, i);
      ++i;
    } else {
      put(s++, at(db_t, j), zj, Sa + j);
      ++j;
    }
  }
  for (; i < Sa; ++i) put(s++, at(da_t, i), at(za_t, i), i);
  for (; j < Sb; ++j) put(s++, at(db_t, j), at(zb_t, j), Sa + j);
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
                                   const T* __restrict__ totals,
                                   const int64_t* __restrict__ counts) {
  const int64_t idx = thread_index();
  if (idx >= n) return;
  const T v = z[idx];
  if (v == *lo) gdep[idx] += bound_share(totals[0], counts[0]);
  if (v == *hi) gdep[idx] += bound_share(totals[1], counts[1]);
}

}  // namespace
}  // namespace nofa
