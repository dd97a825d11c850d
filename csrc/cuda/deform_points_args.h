// The deform_points CUDA kernels' arguments: raw pointers and sizes, no CUDA or torch
// headers, so the device code (cuda/deform_points_device.h) also compiles with a host
// compiler (tests/cpp/test_deform_emulated.cpp). The ATen glue (deform_points_cuda.cpp)
// fills these structs.
#pragma once
#include <cstdint>

namespace nofa {

constexpr int kDeformMaxLayers = 8;   // linear layers per MLP
constexpr int kDeformMaxWidth = 256;  // hidden width (and PE width) a tile keeps on chip

// One MLP. Layer 0 reads PE(x) only (alpha/beta are folded into the per-batch bias c).
template <typename T>
struct DeformMlp {
  int layers;                      // number of linear layers, >= 2
  int dims[kDeformMaxLayers + 1];  // dims[0] = P, dims[l + 1] = outputs of layer l
  const T* wt[kDeformMaxLayers];   // layer l weight transposed, [in, out] (layer 0: PE part)
  const T* w[kDeformMaxLayers];    // layer l weight, [out, in] (layer 0: PE part, [out, P])
  const T* b[kDeformMaxLayers];    // bias of layers >= 1
  const T* c;                      // [N, dims[1]]: first-layer bias per batch element
  int col[kDeformMaxLayers];       // column of layer l's output in the acts / deltas buffers
};

template <typename T>
struct DeformArgs {
  int64_t rows;  // points in this launch (a chunk of the flattened [N * M])
  int64_t row0;  // flattened index of the chunk's first point
  int64_t M;     // points per batch element (batch of a point = (row0 + r) / M)
  int n_freqs, P;
  const T* points;  // [N * M, 3]
  DeformMlp<T> d, w;
  // Forward outputs (null when not wanted), indexed by the flattened row.
  T* x_c;
  T* offset;
  T* weight;
  T* hidden;  // [N * M, hidden_ld]: D-Net layers 1 .. L-2, may be null
  int64_t hidden_ld;
  // Recompute-for-backward mode: every layer's output (and PE at column 0) of the chunk's
  // points, [rows, acts_ld], chunk-relative rows. Null in the plain forward.
  T* acts;
  int64_t acts_ld;
  // Backward: upstream gradients (flattened rows), per-layer pre-activation gradients
  // ([rows, acts_ld], same columns as acts) and the point gradient.
  const T* grad_x_c;
  const T* grad_offset;
  const T* grad_weight;
  T* deltas;
  T* grad_points;
};

}  // namespace nofa
