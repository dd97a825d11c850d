#pragma once
// sample_triplane CUDA kernels. One thread per (point, channel) -- or per (point, 4
// channels) in float32 when C % 4 == 0 -- where channels are independent (forward, plane
// gradient): neighbouring threads touch neighbouring channels of the channels-last
// planes, so loads and atomics coalesce. One warp per
// point for the point gradient, which sums over channels (shuffle reduction).
//
// Device code only, no CUDA runtime calls: cuda/sample_triplane.cu launches the kernels, and
// tests/cpp/test_sample_triplane_emulated.cpp runs this same source on CPU threads (with
// stand-ins for the CUDA built-ins, float4, atomicAdd and the half plane types) against a
// double-precision tri-plane sampler. Under nvcc the half types come from cuda/common/half_types.h.
#include <cstdint>

#include "common/triplane.h"
#include "cuda/common/warp_sum.h"
#if defined(__CUDACC__)
#include "cuda/common/half_types.h"
#endif

namespace nofa {
namespace {

constexpr int kThreads = 256;

inline unsigned int blocks_for(int64_t n) {
  return static_cast<unsigned int>((n + kThreads - 1) / kThreads);
}

template <typename T>
__device__ __forceinline__ void load_point(const T* points, int64_t i, T scale, T& x, T& y, T& z) {
  x = points[i * 3 + 0] * scale;
  y = points[i * 3 + 1] * scale;
  z = points[i * 3 + 2] * scale;
}

template <typename T>
__global__ void forward_kernel(const T* __restrict__ planes_cl, const T* __restrict__ points,
                               T* __restrict__ out, int64_t N, int64_t M, int64_t C, int64_t H,
                               int64_t W, T scale, int reduce) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= N * M * C) return;
  const int64_t c = idx % C, i = idx / C, n = i / M;
  T x, y, z;
  load_point(points, i, scale, x, y, z);
  T acc = T(0);
  for (int p = 0; p < 3; ++p) {
    T u, v;
    plane_uv(p, x, y, z, u, v);
    BilinearTaps<T> t;
    bilinear_taps(u, v, H, W, t);
    const T s = tap_sum(t, planes_cl + (n * 3 + p) * H * W * C + c, C);
    if (reduce == 1) {
      out[i * 3 * C + p * C + c] = s;
    } else {
      acc += s;
    }
  }
  if (reduce == 0) out[i * C + c] = acc / T(3);
}

template <typename T>
__device__ __forceinline__ T grad_of(const T* go_row, int64_t C, int reduce, int p, int64_t c) {
  return reduce == 1 ? go_row[p * C + c] : go_row[c] / T(3);
}

template <typename T>
__global__ void backward_planes_kernel(const T* __restrict__ grad_out, const T* __restrict__ points,
                                       T* __restrict__ grad_planes_cl, int64_t N, int64_t M,
                                       int64_t C, int64_t H, int64_t W, T scale, int reduce) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= N * M * C) return;
  const int64_t c = idx % C, i = idx / C, n = i / M;
  const int64_t oc = reduce == 1 ? 3 * C : C;
  T x, y, z;
  load_point(points, i, scale, x, y, z);
  for (int p = 0; p < 3; ++p) {
    const T g = grad_of(grad_out + i * oc, C, reduce, p, c);
    if (g == T(0)) continue;
    T u, v;
    plane_uv(p, x, y, z, u, v);
    BilinearTaps<T> t;
    bilinear_taps(u, v, H, W, t);
    T* base = grad_planes_cl + (n * 3 + p) * H * W * C + c;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if (t.off[k] >= 0) atomicAdd(base + t.off[k] * C, t.w[k] * g);
    }
  }
}

// float32 with C % 4 == 0: one thread per (point, 4 channels), with 16-byte loads and
// stores. The taps of a point are computed by C / 4 threads instead of C, which cuts the
// instruction count (the kernel is issue-bound, not bandwidth-bound, at one channel per
// thread); loads stay coalesced (a point's C / 4 threads read its texel rows whole).
// Same arithmetic, in the same order, per channel as forward_kernel.
__device__ __forceinline__ void fma4(float4& s, float w, const float4& v) {
  s.x += w * v.x;
  s.y += w * v.y;
  s.z += w * v.z;
  s.w += w * v.w;
}

__global__ void forward_vec4_kernel(const float* __restrict__ planes_cl,
                                    const float* __restrict__ points, float* __restrict__ out,
                                    int64_t N, int64_t M, int64_t C, int64_t H, int64_t W,
                                    float scale, int reduce) {
  const int64_t C4 = C / 4;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= N * M * C4) return;
  const int64_t q = idx % C4, i = idx / C4, n = i / M;
  float x, y, z;
  load_point(points, i, scale, x, y, z);
  float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
  for (int p = 0; p < 3; ++p) {
    float u, v;
    plane_uv(p, x, y, z, u, v);
    BilinearTaps<float> t;
    bilinear_taps(u, v, H, W, t);
    const float4* base = reinterpret_cast<const float4*>(planes_cl + (n * 3 + p) * H * W * C) + q;
    float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if (t.off[k] >= 0) fma4(s, t.w[k], base[t.off[k] * C4]);
    }
    if (reduce == 1) {
      reinterpret_cast<float4*>(out + i * 3 * C + p * C)[q] = s;
    } else {
      acc.x += s.x;
      acc.y += s.y;
      acc.z += s.z;
      acc.w += s.w;
    }
  }
  if (reduce == 0) {
    reinterpret_cast<float4*>(out + i * C)[q] =
        make_float4(acc.x / 3.f, acc.y / 3.f, acc.z / 3.f, acc.w / 3.f);
  }
}

// The plane gradient with one thread per (point, 4 channels), as forward_vec4_kernel. Its
// atomics are applied in L2 a 32-byte sector at a time, so a warp instruction should fill
// whole sectors. With kVectorAtomics (sm_90 and later, where a float4 atomicAdd is one
// 16-byte reduction) thread q adds its channels 4q..4q+3 in one instruction. Otherwise
// thread q takes channels q, q + C/4, q + 2C/4, q + 3C/4: a point's C/4 threads then add
// C/4 consecutive floats per instruction, where channels 4q + r would put every fourth
// float in an instruction (four times the sector operations, each a quarter full). Same
// products w * g per channel as backward_planes_kernel.
// float4 atomicAdd: sm_90 and later, declared by CUDA 12 toolkits (12.4 is a conservative
// floor: an older nvcc takes the scalar path). The CPU-thread test has its own stand-in.
#if !defined(__CUDACC__)
#define NOFA_TOOLKIT_FLOAT4_ATOMICS 1
#elif defined(__CUDACC_VER_MAJOR__) && \
    (__CUDACC_VER_MAJOR__ > 12 || (__CUDACC_VER_MAJOR__ == 12 && __CUDACC_VER_MINOR__ >= 4))
#define NOFA_TOOLKIT_FLOAT4_ATOMICS 1
#else
#define NOFA_TOOLKIT_FLOAT4_ATOMICS 0
#endif

// sm_90's 16-byte float atomic (dst 16-byte aligned). Only backward_planes_vec4<true> calls
// it, and only the builds above compile that for the device.
__device__ __forceinline__ void atomic_add_float4(float* dst, float4 v) {
#if NOFA_TOOLKIT_FLOAT4_ATOMICS && (!defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900)
  atomicAdd(reinterpret_cast<float4*>(dst), v);
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

template <bool kVectorAtomics>
__device__ __forceinline__ void backward_planes_vec4(const float* __restrict__ grad_out,
                                                     const float* __restrict__ points,
                                                     float* __restrict__ grad_planes_cl, int64_t N,
                                                     int64_t M, int64_t C, int64_t H, int64_t W,
                                                     float scale, int reduce) {
  const int64_t C4 = C / 4;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= N * M * C4) return;
  const int64_t q = idx % C4, i = idx / C4, n = i / M;
  const int64_t oc = reduce == 1 ? 3 * C : C;
  // Channel r of this thread's four: 4q + r (vector atomics) or q + r * C4 (scalar).
  const int64_t c0 = kVectorAtomics ? 4 * q : q, dc = kVectorAtomics ? 1 : C4;
  float x, y, z;
  load_point(points, i, scale, x, y, z);
  for (int p = 0; p < 3; ++p) {
    const float* go = grad_out + i * oc + (reduce == 1 ? p * C : 0) + c0;
    float g[4];
    if constexpr (kVectorAtomics) {
      const float4 v = *reinterpret_cast<const float4*>(go);
      g[0] = v.x;
      g[1] = v.y;
      g[2] = v.z;
      g[3] = v.w;
    } else {
#pragma unroll
      for (int r = 0; r < 4; ++r) g[r] = go[r * dc];
    }
    if (reduce == 0) {
#pragma unroll
      for (int r = 0; r < 4; ++r) g[r] /= 3.f;
    }
    if (g[0] == 0.f && g[1] == 0.f && g[2] == 0.f && g[3] == 0.f) continue;
    float u, v;
    plane_uv(p, x, y, z, u, v);
    BilinearTaps<float> t;
    bilinear_taps(u, v, H, W, t);
    float* base = grad_planes_cl + (n * 3 + p) * H * W * C + c0;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if (t.off[k] < 0) continue;
      float* dst = base + t.off[k] * C;
      const float w = t.w[k];
      if constexpr (kVectorAtomics) {
        // One instruction for the four (a zero product adds nothing).
        atomic_add_float4(dst, make_float4(w * g[0], w * g[1], w * g[2], w * g[3]));
      } else {
        // Zero products are skipped as in backward_planes_kernel (channel by channel).
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          if (g[r] != 0.f) atomicAdd(dst + r * dc, w * g[r]);
        }
      }
    }
  }
}

// Each architecture of the fat binary picks its variant at compile time.
__global__ void backward_planes_vec4_kernel(const float* __restrict__ grad_out,
                                            const float* __restrict__ points,
                                            float* __restrict__ grad_planes_cl, int64_t N,
                                            int64_t M, int64_t C, int64_t H, int64_t W, float scale,
                                            int reduce) {
#if NOFA_TOOLKIT_FLOAT4_ATOMICS && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  backward_planes_vec4<true>(grad_out, points, grad_planes_cl, N, M, C, H, W, scale, reduce);
#else
  backward_planes_vec4<false>(grad_out, points, grad_planes_cl, N, M, C, H, W, scale, reduce);
#endif
}

// Half-precision planes (float16 / bfloat16, e.g. under torch.autocast): float32 points,
// taps and accumulation, the result rounded once to the planes' type. Same arithmetic
// order as forward_kernel.
template <typename P>
__global__ void forward_half_kernel(const P* __restrict__ planes_cl,
                                    const float* __restrict__ points, P* __restrict__ out,
                                    int64_t N, int64_t M, int64_t C, int64_t H, int64_t W,
                                    float scale, int reduce) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= N * M * C) return;
  const int64_t c = idx % C, i = idx / C, n = i / M;
  float x, y, z;
  load_point(points, i, scale, x, y, z);
  float acc = 0.f;
  for (int p = 0; p < 3; ++p) {
    float u, v;
    plane_uv(p, x, y, z, u, v);
    BilinearTaps<float> t;
    bilinear_taps(u, v, H, W, t);
    const P* base = planes_cl + (n * 3 + p) * H * W * C + c;
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if (t.off[k] >= 0) s += t.w[k] * to_float(base[t.off[k] * C]);
    }
    if (reduce == 1) {
      out[i * 3 * C + p * C + c] = from_float<P>(s);
    } else {
      acc += s;
    }
  }
  if (reduce == 0) out[i * C + c] = from_float<P>(acc / 3.f);
}

// Whether the 16-byte kernels can take these pointers and sizes.
inline bool vec4_ok(const void* a, const void* b, int64_t C) {
  return C % 4 == 0 && reinterpret_cast<uintptr_t>(a) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(b) % 16 == 0;
}

// One warp per point: lane l takes channels l, l + 32, ..., so each tap's channel row is
// read by the warp in one coalesced sweep; the lanes' partial sums are combined with
// shuffles at the end (a fixed order: the result does not depend on the run).
constexpr int kWarp = 32;

template <typename T>
__global__ void backward_points_kernel(const T* __restrict__ grad_out,
                                       const T* __restrict__ planes_cl,
                                       const T* __restrict__ points, T* __restrict__ grad_points,
                                       int64_t N, int64_t M, int64_t C, int64_t H, int64_t W,
                                       T scale, int reduce) {
  const int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (i >= N * M) return;  // warp-uniform: a warp's lanes share i
  const int64_t n = i / M, oc = reduce == 1 ? 3 * C : C;
  const T* gr = grad_out + i * oc;
  T x, y, z;
  load_point(points, i, scale, x, y, z);
  T acc[3] = {T(0), T(0), T(0)};
  for (int p = 0; p < 3; ++p) {
    T u, v;
    plane_uv(p, x, y, z, u, v);
    BilinearTaps<T> t;
    bilinear_taps(u, v, H, W, t);
    const T* base = planes_cl + (n * 3 + p) * H * W * C;
    T dots[4];  // this lane's channels only: the lanes are summed below
    for (int k = 0; k < 4; ++k) {
      dots[k] = T(0);
      if (t.off[k] < 0) continue;
      const T* src = base + t.off[k] * C;
      for (int64_t c = lane; c < C; c += kWarp) dots[k] += grad_of(gr, C, reduce, p, c) * src[c];
    }
    add_plane_point_grad(p, t, dots, acc);
  }
  warp_sum3(acc);
  if (lane == 0) {
    for (int a = 0; a < 3; ++a) grad_points[i * 3 + a] = acc[a] * scale;
  }
}

}  // namespace
}  // namespace nofa
