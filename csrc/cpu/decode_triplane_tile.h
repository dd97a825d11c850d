// decode_triplane's float32 vector paths (AVX2 and AVX-512; docs/decode_triplane.md,
// docs/cpu_isa.md): the tri-plane gather, both dense layers and the activations of a group
// of points, all in registers (the weights, ~20 KiB, stay in L1). Taken for the decoder
// shapes they are written for (C = 32, Hd = 64, 1 + F <= 48 outputs); everything else, and
// float64, use the generic tile path in decode_triplane.cpp.
//
// Why by hand: per point the OSG decoder is only ~4k multiply-adds, so per-tile ATen calls
// (GEMM dispatch, a separate softplus pass over a [tile, Hd] buffer, sigmoid, scaling) cost
// as much as the arithmetic. Here the hidden activations never leave L1 in the forward; the
// backward keeps, per tile, exactly what the two weight-gradient GEMMs need.
//
// One width-generic body (cpu/decode_triplane_tile_body.h) is compiled once per tier, inside that
// tier's target region (cpu/decode_triplane_tile_avx2.cpp: 8-wide,
// cpu/decode_triplane_tile_avx512.cpp: 16-wide), on top of a few per-tier primitives (loads, FMAs,
// exp, reciprocal, softplus). Results agree with the reference to float32 rounding, not bit for bit
// (the activations use short polynomials; the 1/3 of the tri-plane mean is folded into the first
// layer).
#pragma once
#include <cstdint>
#include <cstring>

#include "cpu/isa.h"

namespace nofa {
namespace fastdec {

// Shapes of the vector paths: channels, hidden units, padded outputs (F feature columns,
// then the density column, then zeros).
constexpr int kC = 32, kHd = 64, kOP = 48;

inline bool shape_ok(int64_t C, int64_t Hd, int64_t O) {
  return C == kC && Hd == kHd && O >= 1 && O <= kOP;
}

// Zeros: the row a tap outside the planes reads, and the bias of bias-free products.
alignas(64) inline const float kZeros[kHd] = {};

// The decoder rearranged for the vector paths; built once per call.
struct Weights {
  alignas(64) float w0t[kC][kHd];  // W0^T / 3: the tri-plane mean folded in
  alignas(64) float b0[kHd];
  alignas(64) float w0[kHd][kC];    // W0 as is (backward: grad of the mean features)
  alignas(64) float w1t[kHd][kOP];  // column j < F: W1[1 + j] (the feature logits)
  alignas(64) float w1p[kOP][kHd];  // row j < F: W1[1 + j]; row F: W1[0] (backward)
  alignas(64) float b1[kOP];        // b1[1 + j], then b1[0]
  alignas(64) float w1d[kHd];       // W1[0]: the density is a dot product, not a padded column
  float b1d;
  int F;

  Weights(const float* W0, const float* B0, const float* W1, const float* B1, int64_t O) {
    std::memset(this, 0, sizeof(*this));
    F = static_cast<int>(O - 1);
    for (int k = 0; k < kHd; ++k) {
      b0[k] = B0[k];
      for (int c = 0; c < kC; ++c) {
        w0t[c][k] = W0[k * kC + c] / 3.0f;
        w0[k][c] = W0[k * kC + c];
      }
    }
    for (int j = 0; j <= F; ++j) {
      const int row = j < F ? j + 1 : 0;  // output column j of the padded layout
      b1[j] = B1[row];
      if (j == F) {
        b1d = B1[0];
        for (int k = 0; k < kHd; ++k) w1d[k] = W1[k];
      }
      for (int k = 0; k < kHd; ++k) {
        if (j < F) w1t[k][j] = W1[row * kHd + k];
        w1p[j][k] = W1[row * kHd + k];
      }
    }
  }
};

// Planes in channels-last layout [N, 3, H, W, C] and points [N * M, 3] (the caller's
// memory: read with unaligned loads).
struct Source {
  const float* planes;
  const float* pts;
  int64_t M, H, W;
  float scale;  // 2 / box_warp
};

// Per-tile buffers of the backward (rows = points of the tile).
struct BackwardTile {
  float* fmean;       // [n, kC]   mean tri-plane features
  float* h;           // [n, kHd]  softplus(z)
  float* gz;          // [n, kHd]  d loss / d z
  float* gout;        // [n, kOP]  d loss / d x in the padded output layout (column F: density)
  float* gfeat;       // [P, kC]   d loss / d mean features, rows of the whole call
  float* gb0;         // [kHd]     running sums of gz rows (fc0 bias gradient)
  float* gb1;         // [kOP]     running sums of gout rows (fc1 bias gradient, padded layout)
  const float* feat;  // [P, F] the forward's features, or null: recompute the output layer
};

// One tier's entry points. forward: density [P] and features [P, F] rows of points
// [i0, i1). backward: fills the tile rows (relative to i0), gfeat rows and the bias sums.
struct Kernels {
  isa::Isa isa;
  void (*forward)(const Weights& w, const Source& s, int64_t i0, int64_t i1, float* dens,
                  float* feat);
  void (*backward)(const Weights& w, const Source& s, int64_t i0, int64_t i1, const float* gd,
                   const float* gf, const BackwardTile& t);
};

// The tiers compiled into this build (null where not: non-x86 builds).
const Kernels* kernels_avx2();
const Kernels* kernels_avx512();

inline const Kernels* kernels_for(isa::Isa t) {
  if (t == isa::Isa::kAvx512) return kernels_avx512();
  if (t == isa::Isa::kAvx2) return kernels_avx2();
  return nullptr;
}

}  // namespace fastdec
}  // namespace nofa
