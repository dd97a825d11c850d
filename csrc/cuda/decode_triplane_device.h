#pragma once
// decode_triplane CUDA forward (docs/decode_triplane.md, "CUDA").
//
// Fast path (C <= 32 features, 1 + F <= 33 outputs: EG3D's decoder, or its density row
// alone): one block of 128 threads per tile of 128 points.
//   1. The block copies both layers' weights into shared memory (fc1 transposed), where
//      every later read is a broadcast: all threads of a warp read the same weight.
//   2. Thread p computes point p's bilinear taps (offsets and weights of 4 texels on each
//      of 3 planes) into shared memory, once per point.
//   3. Threads over (point, channel) gather the mean tri-plane features: neighbouring
//      threads read neighbouring channels of one texel of the channels-last planes, so a
//      warp reads whole 128-byte rows.
//   4. Thread p runs point p's decoder with its features and the output accumulators in
//      registers: per hidden unit, a dot product, softplus, and a rank-1 update of the
//      outputs. Neither the hidden layer nor the weights ever leave the chip.
//   5. The outputs go through shared memory so that the features are written coalesced.
// Other sizes take the general kernel: tiles of up to 32 points, hidden layer in shared
// memory, threads over (point, unit) with the weights passed transposed ([C, Hd] and
// [Hd, O]) so that neighbouring threads read neighbouring weights.
//
// Device code only, no CUDA runtime calls: cuda/decode_triplane.cu launches the kernels, and
// tests/cpp/test_decode_forward_emulated.cpp runs this same source on CPU threads (with
// stand-ins for the CUDA built-ins, shared memory and the half plane types) against a
// double-precision decoder. Under nvcc the half types come from cuda/common/half_types.h.
#include <cstdint>
#include <type_traits>

#include "common/osg_decoder.h"
#include "common/triplane.h"
#include "cuda/common/padded_rows.h"
#if defined(__CUDACC__)
#include "cuda/common/half_types.h"
#endif

namespace nofa {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxTile = 32;
constexpr int64_t kSharedBytes = 48 * 1024;

constexpr int kFastPoints = 128;                 // points per block (= threads) of the fast kernel
constexpr int kFastC = 32;                       // largest C the fast kernel keeps in registers
constexpr int kFastO = 33;                       // largest 1 + F the fast kernel keeps in registers
constexpr int kFastOPad = (kFastO + 3) / 4 * 4;  // output-weight row stride: whole float4s
constexpr int kTaps = 12;                        // 3 planes x 4 texels

// Shared-memory plan of the fast kernel, in units of A (taps offsets stored as int, the
// same size as float). The weight rows are zero-padded to kFastC / kFastOPad floats, so the
// decoder reads them as 16-byte broadcasts (4 weights per shared-memory load instead of 1:
// with one load per multiply-add the loop was bound by the load/store unit).
struct FastLayout {
  int64_t w0, w1t, b0, b1, stage, toff, tw, total;
  int64_t ld;  // row stride of the staging rows: max(C, O), odd (no bank conflicts)
};

inline FastLayout fast_layout(int64_t C, int64_t Hd, int64_t O) {
  FastLayout l;
  l.ld = (C > O ? C : O) | 1;
  l.w0 = 0;                    // [Hd, kFastC], 16-byte aligned rows
  l.w1t = l.w0 + Hd * kFastC;  // [Hd, kFastOPad], 16-byte aligned rows
  l.b0 = l.w1t + Hd * kFastOPad;
  l.b1 = l.b0 + Hd;
  l.stage = l.b1 + O;
  l.toff = l.stage + kFastPoints * l.ld;
  l.tw = l.toff + kFastPoints * kTaps;
  l.total = l.tw + kFastPoints * kTaps;
  return l;
}

// PT: the planes' type (float, or float16 / bfloat16 under autocast); everything else,
// and all arithmetic, in A = float.
template <typename PT, typename A, int CM, int OM>
__global__ void __launch_bounds__(kFastPoints)
    fast_forward_kernel(const PT* __restrict__ planes_cl, const A* __restrict__ points,
                        const A* __restrict__ w0, const A* __restrict__ b0,
                        const A* __restrict__ w1, const A* __restrict__ b1, A* __restrict__ density,
                        A* __restrict__ features, int64_t P, int64_t M, int C, int64_t H, int64_t W,
                        int Hd, int O, A scale, FastLayout L) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  A* const sm = reinterpret_cast<A*>(smem_raw);
  static_assert(std::is_same_v<A, float> && CM == kFastC && OM == kFastO, "fast_layout's sizes");
  constexpr int OMP = kFastOPad;
  A* const sw0 = sm + L.w0;    // [Hd, CM]: unit j's input weights (nn.Linear rows), zero-padded
  A* const sw1t = sm + L.w1t;  // [Hd, OMP]: unit j's output weights (fc1 transposed), zero-padded
  A* const sb0 = sm + L.b0;
  A* const sb1 = sm + L.b1;
  A* const stage = sm + L.stage;  // [kFastPoints, ld]: features in, raw outputs out
  int* const toff = reinterpret_cast<int*>(sm + L.toff);  // [kFastPoints, 12], -1: outside
  A* const tw = sm + L.tw;                                // [kFastPoints, 12]
  const int tid = threadIdx.x;
  const int ld = static_cast<int>(L.ld);
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * kFastPoints;
  const int n_pts = static_cast<int>(P - i0 < kFastPoints ? P - i0 : kFastPoints);

  for (int idx = tid; idx < Hd * CM; idx += kFastPoints) {
    const int j = idx / CM, c = idx - j * CM;
    sw0[idx] = c < C ? w0[j * C + c] : A(0);
  }
  for (int idx = tid; idx < O * Hd; idx += kFastPoints) {  // coalesced reads of fc1
    const int o = idx / Hd, j = idx - o * Hd;
    sw1t[j * OMP + o] = w1[idx];
  }
  for (int idx = tid; idx < Hd * (OMP - O); idx += kFastPoints) {
    const int j = idx / (OMP - O), o = O + (idx - j * (OMP - O));
    sw1t[j * OMP + o] = A(0);
  }
  for (int j = tid; j < Hd; j += kFastPoints) sb0[j] = b0[j];
  for (int o = tid; o < O; o += kFastPoints) sb1[o] = b1[o];

  if (tid < n_pts) {
    const int64_t i = i0 + tid;
    const A x = points[i * 3 + 0] * scale;
    const A y = points[i * 3 + 1] * scale;
    const A z = points[i * 3 + 2] * scale;
    for (int p = 0; p < 3; ++p) {
      A u, v;
      plane_uv(p, x, y, z, u, v);
      BilinearTaps<A> t;
      bilinear_taps(u, v, H, W, t);
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        toff[tid * kTaps + p * 4 + k] = static_cast<int>(t.off[k]);
        tw[tid * kTaps + p * 4 + k] = t.w[k];
      }
    }
  }
  __syncthreads();

  for (int idx = tid; idx < n_pts * C; idx += kFastPoints) {
    const int p = idx / C, c = idx - p * C;
    const int64_t n = (i0 + p) / M;
    A acc = A(0);
    for (int pl = 0; pl < 3; ++pl) {
      const PT* base = planes_cl + (n * 3 + pl) * H * W * C + c;
      A s = A(0);  // tap_sum's order: the four texels, then the planes
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int off = toff[p * kTaps + pl * 4 + k];
        if (off >= 0)
          s += tw[p * kTaps + pl * 4 + k] * to_float(base[static_cast<int64_t>(off) * C]);
      }
      acc += s;
    }
    stage[p * ld + c] = acc / A(3);
  }
  __syncthreads();

  if (tid < n_pts) {
    A f[CM];
#pragma unroll
    for (int c = 0; c < CM; ++c) f[c] = c < C ? stage[tid * ld + c] : A(0);
    A out[OMP];
#pragma unroll
    for (int o = 0; o < OMP; ++o) out[o] = o < O ? sb1[o] : A(0);
    for (int j = 0; j < Hd; ++j) {
      // Padded weights and features are zero: s and out[o < O] get what the unpadded sums
      // give, in the same order.
      A unused;
      const A h = softplus(padded_row_dot(sw0 + j * CM, sb0[j], f), unused);
      padded_row_axpy(sw1t + j * OMP, h, out);
    }
    // Only this thread reads or writes row tid from here on: no barrier needed before.
#pragma unroll
    for (int o = 0; o < OM; ++o) {
      if (o < O) stage[tid * ld + o] = out[o];
    }
  }
  __syncthreads();

  if (tid < n_pts) density[i0 + tid] = stage[tid * ld];
  const int F = O - 1;
  for (int idx = tid; idx < n_pts * F; idx += kFastPoints) {
    const int p = idx / F, o = idx - p * F + 1;
    A unused;
    features[i0 * F + idx] = osg_feature(stage[p * ld + o], unused);
  }
}

// General sizes. w0t is fc0's weight transposed ([C, Hd]), w1t fc1's ([Hd, O]).
template <typename T>
__global__ void forward_kernel(const T* __restrict__ planes_cl, const T* __restrict__ points,
                               const T* __restrict__ w0t, const T* __restrict__ b0,
                               const T* __restrict__ w1t, const T* __restrict__ b1,
                               T* __restrict__ density, T* __restrict__ features, int64_t P,
                               int64_t M, int64_t C, int64_t H, int64_t W, int64_t Hd, int64_t O,
                               T scale, int64_t tile) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* f = reinterpret_cast<T*>(smem_raw);  // [tile, C]
  T* h = f + tile * C;                    // [tile, Hd]
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * tile;
  const int64_t n_pts = P - i0 < tile ? P - i0 : tile;
  for (int64_t idx = threadIdx.x; idx < n_pts * C; idx += blockDim.x) {
    const int64_t c = idx % C, i = i0 + idx / C, n = i / M;
    const T x = points[i * 3 + 0] * scale, y = points[i * 3 + 1] * scale,
            z = points[i * 3 + 2] * scale;
    T acc = T(0);
    for (int p = 0; p < 3; ++p) {
      T u, v;
      plane_uv(p, x, y, z, u, v);
      BilinearTaps<T> t;
      bilinear_taps(u, v, H, W, t);
      acc += tap_sum(t, planes_cl + (n * 3 + p) * H * W * C + c, C);
    }
    f[idx] = acc / T(3);
  }
  __syncthreads();
  for (int64_t idx = threadIdx.x; idx < n_pts * Hd; idx += blockDim.x) {
    const int64_t j = idx % Hd, p = idx / Hd;
    T s = b0[j];
    for (int64_t c = 0; c < C; ++c) s += w0t[c * Hd + j] * f[p * C + c];
    T unused;
    h[idx] = softplus(s, unused);
  }
  __syncthreads();
  for (int64_t idx = threadIdx.x; idx < n_pts * O; idx += blockDim.x) {
    const int64_t o = idx % O, p = idx / O, i = i0 + p;
    T s = b1[o];
    for (int64_t j = 0; j < Hd; ++j) s += w1t[j * O + o] * h[p * Hd + j];
    if (o == 0) {
      density[i] = s;
    } else {
      T unused;
      features[i * (O - 1) + o - 1] = osg_feature(s, unused);
    }
  }
}

}  // namespace
}  // namespace nofa
