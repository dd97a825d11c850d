#pragma once
// The fused decode_triplane CUDA backward kernel (docs/decode_triplane.md, "CUDA"): float32,
// C <= 32 features, 1 + F <= 33 outputs (the fast forward's sizes). Nothing of size [points,
// hidden] exists outside one block's shared memory.
//
// A fixed grid of resident blocks (128 threads each) walks tiles of 128 points
// (block b takes tiles b, b + gridDim, ...). Per tile:
//   A. Gather (a warp per point, lane = channel): the mean tri-plane features into shared
//      memory, with the forward's arithmetic in the forward's order; a warp reads whole
//      channel rows of the channels-last planes. The tile's feature cotangents are staged
//      in shared memory (coalesced reads).
//   B. Thread p reruns point p's decoder in registers (features, outputs) and turns the
//      outputs into d loss / d pre-activation gx (density row: grad_density; feature rows:
//      osg_feature's derivative).
//   C. Thread p walks the hidden units again, in groups of kUnits: per unit it recomputes
//      z and softplus (common/osg_decoder.h), gz = (W1^T gx) * softplus'(z) and adds
//      W0[j] gz to its feature gradient (registers). The group's gz and h of all points go
//      to shared memory, where the block forms the group's weight-gradient products
//      (threads over weight elements, looping over the tile's points) into per-block
//      accumulators in shared memory.
//   D. Scatter (a warp per point, lane = channel): the plane gradient with atomicAdd into
//      channels-last memory (coalesced: a warp adds to one texel's channel row), and the
//      point gradient as sample_triplane's backward_points kernel forms it (lane partial
//      sums, a fixed shuffle tree: deterministic).
// At the end each block writes its weight-gradient sums to its own row of a [blocks, nw]
// buffer, which the caller sums: no float atomics on the weights, so for one device (one
// grid size) the weight and point gradients are reproducible bit for bit.
//
// Device code only, no CUDA runtime calls: cuda/decode_triplane_backward.cu launches it, and
// tests/cpp/test_decode_backward_emulated.cpp runs this same source on CPU threads (with
// stand-ins for the CUDA built-ins) against a plain double-precision backward.
#include <cstdint>

#include "common/osg_decoder.h"
#include "common/triplane.h"
#include "cuda/common/warp_sum.h"
#include "cuda/common/padded_rows.h"

namespace nofa {
namespace {

constexpr int kPoints = 128;  // points per tile = threads per block
constexpr int kWarp = 32;
constexpr int kWarps = kPoints / kWarp;
constexpr int kMaxC = 32;                      // features kept in registers per thread
constexpr int kMaxO = 33;                      // outputs (1 + F) kept in registers per thread
constexpr int kMaxOPad = (kMaxO + 3) / 4 * 4;  // fc1 row stride in shared memory: whole float4s
constexpr int kUnits = 8;                      // hidden units per weight-gradient round (phase C)
constexpr int kUnitLd = kUnits + 1;  // odd row stride: thread p's row starts in bank 9p % 32

// Shared-memory plan, in floats.
struct Layout {
  int64_t w0, w1t, b0, b1, f, gx, gz, h, acc, total;
  int ldf, ldo;  // row strides of f / gx: C and O rounded up to odd (no bank conflicts)
};

Layout layout(int64_t C, int64_t Hd, int64_t O) {
  Layout l;
  l.ldf = static_cast<int>(C | 1);
  l.ldo = static_cast<int>(O | 1);
  // The weight rows are zero-padded to whole float4s, read as 16-byte broadcasts (4 weights
  // per shared-memory load: one load per multiply-add bound the loops by the load/store unit).
  l.w0 = 0;                         // [Hd, kMaxC]     fc0 weight, nn.Linear rows, padded
  l.w1t = l.w0 + Hd * kMaxC;        // [Hd, kMaxOPad]  fc1 weight transposed, padded
  l.b0 = l.w1t + Hd * kMaxOPad;     // [Hd]
  l.b1 = l.b0 + Hd;                 // [O]
  l.f = l.b1 + O;                   // [kPoints, ldf]  mean features; later their gradient / 3
  l.gx = l.f + kPoints * l.ldf;     // [kPoints, ldo]  feature cotangents, then d loss / d outputs
  l.gz = l.gx + kPoints * l.ldo;    // [kPoints, kUnitLd]  d loss / d z of this round's units
  l.h = l.gz + kPoints * kUnitLd;   // [kPoints, kUnitLd]  softplus(z) of this round's units
  l.acc = l.h + kPoints * kUnitLd;  // [nw]  weight-gradient sums of this block
  l.total = l.acc + Hd * C + Hd + O * Hd + O;  // gW0, gb0, gW1, gb1
  return l;
}

template <int CM, int OM>
__global__ void __launch_bounds__(kPoints)
    fused_backward_kernel(const float* __restrict__ gd, const float* __restrict__ gf,
                          const float* __restrict__ planes_cl, const float* __restrict__ points,
                          const float* __restrict__ w0, const float* __restrict__ b0,
                          const float* __restrict__ w1, const float* __restrict__ b1,
                          float* __restrict__ grad_planes_cl, float* __restrict__ grad_points,
                          float* __restrict__ grad_weights, int64_t P, int64_t M, int C, int64_t H,
                          int64_t W, int Hd, int O, float scale, Layout L) {
  static_assert(CM == kMaxC && OM == kMaxO, "layout()'s sizes");
  constexpr int OMP = kMaxOPad;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  float* const sm = reinterpret_cast<float*>(smem_raw);
  float* const sw0 = sm + L.w0;    // [Hd, CM], zero-padded rows
  float* const sw1t = sm + L.w1t;  // [Hd, OMP], zero-padded rows
  float* const sb0 = sm + L.b0;
  float* const sb1 = sm + L.b1;
  float* const sf = sm + L.f;
  float* const sgx = sm + L.gx;
  float* const sgz = sm + L.gz;
  float* const sh = sm + L.h;
  float* const acc_w0 = sm + L.acc;       // [Hd, C]
  float* const acc_b0 = acc_w0 + Hd * C;  // [Hd]
  float* const acc_w1 = acc_b0 + Hd;      // [O, Hd]
  float* const acc_b1 = acc_w1 + O * Hd;  // [O]
  const int tid = threadIdx.x, lane = tid % kWarp, warp = tid / kWarp;
  const int ldf = L.ldf, ldo = L.ldo, F = O - 1;
  const int nw = static_cast<int>(L.total - L.acc);  // [gW0 | gb0 | gW1 | gb1]
  const int64_t HWC = H * W * C;
  // Block-uniform switches (every thread reaches the same barriers).
  const bool want_w = grad_weights != nullptr;
  const bool want_f = grad_planes_cl != nullptr || grad_points != nullptr;

  for (int idx = tid; idx < Hd * CM; idx += kPoints) {
    const int j = idx / CM, c = idx - j * CM;
    sw0[idx] = c < C ? w0[j * C + c] : 0.f;
  }
  for (int idx = tid; idx < O * Hd; idx += kPoints) {  // coalesced reads of fc1
    const int o = idx / Hd, j = idx - o * Hd;
    sw1t[j * OMP + o] = w1[idx];
  }
  for (int idx = tid; idx < Hd * (OMP - O); idx += kPoints) {
    const int j = idx / (OMP - O), o = O + (idx - j * (OMP - O));
    sw1t[j * OMP + o] = 0.f;
  }
  for (int j = tid; j < Hd; j += kPoints) sb0[j] = b0[j];
  for (int o = tid; o < O; o += kPoints) sb1[o] = b1[o];
  if (want_w) {
    for (int e = tid; e < nw; e += kPoints) acc_w0[e] = 0.f;
  }

  const int64_t tiles = (P + kPoints - 1) / kPoints;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t i0 = tile * kPoints;
    const int n_pts = static_cast<int>(P - i0 < kPoints ? P - i0 : kPoints);
    // The previous tile's fc1-bias sums read every row of sgx, which phase A refills.
    __syncthreads();

    // A. Mean features, a warp per point: the forward kernel's sums in its order.
    for (int p = warp; p < n_pts; p += kWarps) {
      const int64_t i = i0 + p, n = i / M;
      const float x = points[i * 3 + 0] * scale, y = points[i * 3 + 1] * scale,
                  z = points[i * 3 + 2] * scale;
      float acc = 0.f;
      for (int pl = 0; pl < 3; ++pl) {
        float u, v;
        plane_uv(pl, x, y, z, u, v);
        BilinearTaps<float> t;
        bilinear_taps(u, v, H, W, t);
        if (lane < C)
          acc += tap_sum(t, planes_cl + (n * 3 + pl) * HWC + lane, static_cast<int64_t>(C));
      }
      if (lane < C) sf[p * ldf + lane] = acc / 3.f;
    }
    // The tile's feature cotangents into sgx columns 1..F, read coalesced (thread p reading
    // its own row of gf would touch 32 rows per warp load); phase B turns them into gx.
    for (int idx = tid; idx < n_pts * F; idx += kPoints) {
      const int p = idx / F, o = idx - p * F;
      sgx[p * ldo + 1 + o] = gf[i0 * F + idx];
    }
    __syncthreads();

    // B. Thread p: point p's decoder forward, outputs -> gx (kept in g).
    const bool live = tid < n_pts;
    const int64_t i = i0 + tid;
    // Padded features, weights and outputs are zero, so the sums below are the unpadded
    // ones in the same order.
    float f[CM], g[OMP];
#pragma unroll
    for (int c = 0; c < CM; ++c) f[c] = (live && c < C) ? sf[tid * ldf + c] : 0.f;
#pragma unroll
    for (int o = 0; o < OMP; ++o) g[o] = o < O ? sb1[o] : 0.f;
    if (live) {
      for (int j = 0; j < Hd; ++j) {
        float unused;
        const float hj = softplus(padded_row_dot(sw0 + j * CM, sb0[j], f), unused);
        padded_row_axpy(sw1t + j * OMP, hj, g);
      }
#pragma unroll
      for (int o = 0; o < OMP; ++o) {
        if (o >= O) g[o] = 0.f;  // 0 * hj is NaN for an infinite hj: keep the padding zero
      }
      g[0] = gd[i];  // density is the raw output
#pragma unroll
      for (int o = 1; o < OM; ++o) {
        if (o < O) {
          float d;
          osg_feature(g[o], d);
          g[o] = sgx[tid * ldo + o] * d;
        }
      }
      if (want_w) {
#pragma unroll
        for (int o = 0; o < OM; ++o) {
          if (o < O) sgx[tid * ldo + o] = g[o];
        }
      }
    }

    // C. Hidden units again, kUnits at a time: feature gradient in registers, the weight
    // gradients of the round's units through shared memory.
    float gfe[CM];
#pragma unroll
    for (int c = 0; c < CM; ++c) gfe[c] = 0.f;
    for (int j0 = 0; j0 < Hd; j0 += kUnits) {
      const int jn = Hd - j0 < kUnits ? Hd - j0 : kUnits;
      if (live) {
        for (int jj = 0; jj < jn; ++jj) {
          const int j = j0 + jj;
          float dsp;
          const float hj = softplus(padded_row_dot(sw0 + j * CM, sb0[j], f), dsp);
          const float gz = padded_row_dot(sw1t + j * OMP, 0.f, g) * dsp;
          if (want_f) padded_row_axpy(sw0 + j * CM, gz, gfe);  // gfe[c >= C]: padding, never read
          if (want_w) {
            sgz[tid * kUnitLd + jj] = gz;
            sh[tid * kUnitLd + jj] = hj;
          }
        }
      }
      if (want_w) {
        __syncthreads();  // this round's sgz / sh (and phase B's sgx) are complete
        // gW0[j, c] += sum_p gz[p, j] f[p, c]: a warp reads one f row (distinct banks) and
        // one or two gz values (broadcast).
        for (int e = tid; e < jn * C; e += kPoints) {
          const int jj = e / C, c = e - jj * C;
          float s = 0.f;
          for (int p = 0; p < n_pts; ++p) s += sgz[p * kUnitLd + jj] * sf[p * ldf + c];
          acc_w0[(j0 + jj) * C + c] += s;
        }
        // gW1[o, j] += sum_p gx[p, o] h[p, j]
        for (int e = tid; e < O * jn; e += kPoints) {
          const int o = e / jn, jj = e - o * jn;
          float s = 0.f;
          for (int p = 0; p < n_pts; ++p) s += sgx[p * ldo + o] * sh[p * kUnitLd + jj];
          acc_w1[o * Hd + j0 + jj] += s;
        }
        for (int jj = tid; jj < jn; jj += kPoints) {
          float s = 0.f;
          for (int p = 0; p < n_pts; ++p) s += sgz[p * kUnitLd + jj];
          acc_b0[j0 + jj] += s;
        }
        __syncthreads();  // the next round overwrites sgz / sh
      }
    }
    if (want_w) {
      for (int o = tid; o < O; o += kPoints) {
        float s = 0.f;
        for (int p = 0; p < n_pts; ++p) s += sgx[p * ldo + o];
        acc_b1[o] += s;
      }
    }

    // D. Plane and point gradients, a warp per point.
    if (want_f) {
      // Row tid of sf: last read by this thread (phase B) or, with weight gradients, by
      // the block before the barrier that ended phase C.
      if (live) {
#pragma unroll
        for (int c = 0; c < CM; ++c) {
          if (c < C) sf[tid * ldf + c] = gfe[c] / 3.f;  // each plane's share of the mean
        }
      }
      __syncthreads();
      for (int p = warp; p < n_pts; p += kWarps) {
        const int64_t ip = i0 + p, n = ip / M;
        const float x = points[ip * 3 + 0] * scale, y = points[ip * 3 + 1] * scale,
                    z = points[ip * 3 + 2] * scale;
        const float gc = lane < C ? sf[p * ldf + lane] : 0.f;
        float pacc[3] = {0.f, 0.f, 0.f};
        for (int pl = 0; pl < 3; ++pl) {
          float u, v;
          plane_uv(pl, x, y, z, u, v);
          BilinearTaps<float> t;
          bilinear_taps(u, v, H, W, t);
          const int64_t base = (n * 3 + pl) * HWC + lane;
          float dots[4];  // this lane's channel only: the lanes are summed below
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            dots[k] = 0.f;
            if (t.off[k] < 0 || lane >= C) continue;
            const int64_t at = base + t.off[k] * C;
            if (grad_planes_cl != nullptr && gc != 0.f) atomicAdd(grad_planes_cl + at, t.w[k] * gc);
            if (grad_points != nullptr) dots[k] = gc * planes_cl[at];
          }
          add_plane_point_grad(pl, t, dots, pacc);  // common/triplane.h, as sample_triplane
        }
        if (grad_points != nullptr) {  // block-uniform: every lane of the warp shuffles
          warp_sum3(pacc);
          if (lane == 0) {
            for (int a = 0; a < 3; ++a) grad_points[ip * 3 + a] = pacc[a] * scale;
          }
        }
      }
    }
  }

  if (want_w) {
    __syncthreads();  // every thread's last accumulator update (and, with no tile, the zeroing)
    float* row = grad_weights + static_cast<int64_t>(blockIdx.x) * nw;
    for (int e = tid; e < nw; e += kPoints) row[e] = acc_w0[e];
  }
}

}  // namespace
}  // namespace nofa
