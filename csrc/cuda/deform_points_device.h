#pragma once
// deform_points CUDA kernels (docs/deformation.md, "How the kernels work").
//
// Forward: one block per tile of TP points. The tile's PE and the activations of the
// current and previous layer stay in shared memory across all layers of both MLPs; only
// the points go in and x_c / offset / weight (and, when asked, the saved hidden layers)
// come out. Activations are stored feature-major, one padded row of TP points per
// feature ([features][ROW], ROW = TP + 16 bytes' worth): each thread owns one output neuron
// and keeps TP accumulators in registers; per input feature it reads one weight (weights
// pre-transposed to [in, out], so a warp's reads are coalesced) and the feature's TP
// values as 16-byte shared-memory broadcasts (4 multiply-adds per load in float32 rather
// than 1). The padding makes a warp's 16-byte stores of its rows hit distinct banks.
// The output layers (3 offsets, 1 logit) run one thread per (output, point).
//
// Backward (per chunk of points, driven by the glue): the forward kernel in "acts" mode
// writes every layer's output of the chunk to a global buffer; the backward kernel walks
// the layers in reverse with the tile's gradient in shared memory (same layout; weights
// read in their [out, in] layout, again coalesced), writes each layer's pre-activation
// gradient to a global buffer and finishes the point gradient through PE. The weight
// gradients are then dense products over the chunk (cuBLAS via at::mm in the glue).
//
// Device code only, no CUDA runtime calls: cuda/deform_points.cu launches the kernels, and
// tests/cpp/test_deform_emulated.cpp runs this same source on CPU threads (with stand-ins
// for the CUDA built-ins and the 16-byte vector types) against a double-precision reference.
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "common/deform.h"

namespace nofa {
namespace {

constexpr int kThreads = 128;
constexpr int kMaxPe = 3 + 6 * 16;  // PE width at the largest n_freqs the op accepts

template <typename T>
struct Tile;
template <>
struct Tile<float> {
  static constexpr int P = 32;
};
template <>
struct Tile<double> {
  static constexpr int P = 16;
};

// 16-byte vectors of T, and the padded row length (TP + one vector: 144 bytes).
template <typename T>
struct Vec;
template <>
struct Vec<float> {
  using type = float4;
  static constexpr int n = 4;
};
template <>
struct Vec<double> {
  using type = double2;
  static constexpr int n = 2;
};

template <typename T>
constexpr int row_len() {
  return Tile<T>::P + Vec<T>::n;
}

// acc[p] += row[p] * w for the TP points of a feature row (16-byte aligned).
template <typename T, int TP>
__device__ __forceinline__ void row_fma(T (&acc)[TP], const T* row, T w) {
  using V = typename Vec<T>::type;
  const V* r = reinterpret_cast<const V*>(row);
#pragma unroll
  for (int q = 0; q < TP / Vec<T>::n; ++q) {
    const V v = r[q];
    if constexpr (Vec<T>::n == 4) {
      acc[4 * q + 0] += v.x * w;
      acc[4 * q + 1] += v.y * w;
      acc[4 * q + 2] += v.z * w;
      acc[4 * q + 3] += v.w * w;
    } else {
      acc[2 * q + 0] += v.x * w;
      acc[2 * q + 1] += v.y * w;
    }
  }
}

template <typename T, int TP>
__device__ __forceinline__ void row_store(T* row, const T (&val)[TP]) {
  using V = typename Vec<T>::type;
  V* r = reinterpret_cast<V*>(row);
#pragma unroll
  for (int q = 0; q < TP / Vec<T>::n; ++q) {
    V v;
    if constexpr (Vec<T>::n == 4) {
      v.x = val[4 * q + 0];
      v.y = val[4 * q + 1];
      v.z = val[4 * q + 2];
      v.w = val[4 * q + 3];
    } else {
      v.x = val[2 * q + 0];
      v.y = val[2 * q + 1];
    }
    r[q] = v;
  }
}

template <typename T>
struct Smem {
  T* pe;    // forward: [P][ROW] (PE, feature-major); backward: [TP, P] (dL/dPE, point-major)
  T* a;     // [W][ROW]
  T* b;     // [W][ROW]
  T* head;  // [TP, 4]: offset (3), W-Net logit (1) -- or their gradients
  int* n;   // [TP]: batch element of each point
};

template <typename T, int TP>
__device__ Smem<T> carve(char* raw, int P, int W) {
  constexpr int ROW = row_len<T>();
  Smem<T> s;
  T* base = reinterpret_cast<T*>(raw);
  s.pe = base;
  s.a = s.pe + ROW * P;
  s.b = s.a + ROW * W;
  s.head = s.b + ROW * W;
  s.n = reinterpret_cast<int*>(s.head + TP * 4);
  return s;
}

// Bytes of the dynamic shared memory carve() lays out for PE width P and hidden widths up to
// max_width (host side: the launcher's size, and the emulated test's); 0 when a tile's
// activations would not fit the plan (more than kDeformMaxWidth features).
template <typename T>
size_t block_smem_bytes(int P, int max_width) {
  if (max_width > kDeformMaxWidth || P > kDeformMaxWidth) return 0;
  constexpr int TP = Tile<T>::P;
  return sizeof(T) * (static_cast<size_t>(row_len<T>()) * (P + 2 * max_width) + 4 * TP) +
         sizeof(int) * TP;
}

// A hidden layer: out[j][p] = relu(bias + sum_k in[k][p] * wt[k, j]) for the tile's points
// p, every output j. bias is c[n_p, j] (per batch element) when c is given, else b[j]. The
// result goes to shared memory and, when g_out is given, to global rows row_base + p.
template <typename T, int TP>
__device__ void dense_forward(const T* s_in, int in_dim, const T* __restrict__ wt, int out_dim,
                              const T* __restrict__ b, const T* __restrict__ c, const int* s_n,
                              T* s_out, int cnt, T* g_out, int64_t g_ld, int64_t row_base) {
  constexpr int ROW = row_len<T>();
  for (int j = threadIdx.x; j < out_dim; j += blockDim.x) {
    T acc[TP];
#pragma unroll
    for (int p = 0; p < TP; ++p) acc[p] = T(0);
    for (int k = 0; k < in_dim; ++k) {
      row_fma<T, TP>(acc, s_in + k * ROW, wt[static_cast<int64_t>(k) * out_dim + j]);
    }
#pragma unroll
    for (int p = 0; p < TP; ++p) {
      const T v = relu(acc[p] + (c ? c[static_cast<int64_t>(s_n[p]) * out_dim + j] : b[j]));
      acc[p] = v;
      if (g_out && p < cnt) g_out[(row_base + p) * g_ld + j] = v;
    }
    row_store<T, TP>(s_out + j * ROW, acc);
  }
}

// The output layer (3 offsets, or the W-Net's 1 logit), no activation: too few outputs
// for a thread each to keep the block busy, so one thread per (output, point) pair;
// neighbouring threads take neighbouring points (conflict-free shared reads) of one
// output (one broadcast weight). head[p * 4 + j] = bias[j] + sum_k in[k][p] * wt[k, j].
template <typename T, int TP>
__device__ void dense_head(const T* s_in, int in_dim, const T* __restrict__ wt, int out_dim,
                           const T* __restrict__ b, T* s_head, int cnt, T* g_out, int64_t g_ld,
                           int64_t row_base) {
  constexpr int ROW = row_len<T>();
  for (int idx = threadIdx.x; idx < TP * out_dim; idx += blockDim.x) {
    const int j = idx / TP, p = idx - j * TP;
    T acc = T(0);
    for (int k = 0; k < in_dim; ++k)
      acc += s_in[k * ROW + p] * wt[static_cast<int64_t>(k) * out_dim + j];
    const T v = acc + b[j];
    s_head[p * 4 + j] = v;
    if (g_out && p < cnt) g_out[(row_base + p) * g_ld + j] = v;
  }
}

// g[k][p] = mask(p, k) * sum_j delta[j][p] * w[j, k] (w is [out, in]); mask is ReLU's
// derivative read from the layer's saved output acts[p, k]. Writes shared and global
// (deltas) copies. kHead: delta is the output layer's gradient, head[p * 4 + j].
template <typename T, int TP, bool kHead>
__device__ void dense_backward(const T* s_delta, int out_dim, const T* __restrict__ w, int in_dim,
                               const T* __restrict__ acts, int64_t acts_ld, T* s_g, T* g_deltas,
                               int cnt) {
  constexpr int ROW = row_len<T>();
  for (int k = threadIdx.x; k < in_dim; k += blockDim.x) {
    T acc[TP];
#pragma unroll
    for (int p = 0; p < TP; ++p) acc[p] = T(0);
    for (int j = 0; j < out_dim; ++j) {
      const T wv = w[static_cast<int64_t>(j) * in_dim + k];
      if constexpr (kHead) {
#pragma unroll
        for (int p = 0; p < TP; ++p) acc[p] += s_delta[p * 4 + j] * wv;
      } else {
        row_fma<T, TP>(acc, s_delta + j * ROW, wv);
      }
    }
#pragma unroll
    for (int p = 0; p < TP; ++p) {
      T v = T(0);
      if (p < cnt) {
        v = relu_grad_from_output(acts[p * acts_ld + k], acc[p]);
        g_deltas[p * acts_ld + k] = v;
      }
      acc[p] = v;
    }
    row_store<T, TP>(s_g + k * ROW, acc);
  }
}

// Runs one MLP on the tile (input: s.pe). The output layer's raw values end in
// s.head[p * 4 + head_col ...].
template <typename T, int TP>
__device__ void mlp_forward(const DeformArgs<T>& a, const DeformMlp<T>& net, Smem<T>& s, int cnt,
                            int64_t tile_row, bool is_d, int head_col) {
  const T* in = s.pe;
  int64_t hidden_col = 0;
  for (int l = 0; l < net.layers; ++l) {
    const bool last = l + 1 == net.layers;
    const int out_dim = net.dims[l + 1];
    T* g_out = nullptr;
    int64_t g_ld = 0, g_row = 0;
    if (a.acts) {  // recompute for the backward: keep every layer of the chunk
      g_out = a.acts + net.col[l];
      g_ld = a.acts_ld;
      g_row = tile_row - a.row0;
    } else if (is_d && a.hidden && l >= 1 && !last) {  // the forward's saved D-Net layers
      g_out = a.hidden + hidden_col;
      g_ld = a.hidden_ld;
      g_row = tile_row;
    }
    if (last) {  // layers >= 2: the output layer is never the first (it has a bias b[l])
      dense_head<T, TP>(in, net.dims[l], net.wt[l], out_dim, net.b[l], s.head + head_col, cnt,
                        g_out, g_ld, g_row);
    } else {
      T* out = l % 2 == 0 ? s.a : s.b;
      dense_forward<T, TP>(in, net.dims[l], net.wt[l], out_dim, net.b[l], l == 0 ? net.c : nullptr,
                           s.n, out, cnt, g_out, g_ld, g_row);
      in = out;
    }
    if (l >= 1 && !last) hidden_col += out_dim;
    __syncthreads();
  }
}

template <typename T, int TP>
__global__ void __launch_bounds__(kThreads) forward_kernel(const DeformArgs<T> a, int W) {
  extern __shared__ __align__(16) char raw[];
  Smem<T> s = carve<T, TP>(raw, a.P, W);
  const int64_t tile_row = a.row0 + static_cast<int64_t>(blockIdx.x) * TP;  // flattened row
  const int64_t left = a.row0 + a.rows - tile_row;
  const int cnt = left < TP ? static_cast<int>(left) : TP;
  constexpr int ROW = row_len<T>();
  for (int p = threadIdx.x; p < TP; p += blockDim.x) {
    if (p < cnt) {
      T pe[kMaxPe];
      s.n[p] = static_cast<int>((tile_row + p) / a.M);
      positional_encoding<double>(a.points + (tile_row + p) * 3, a.n_freqs, pe);
      for (int q = 0; q < a.P; ++q) s.pe[q * ROW + p] = pe[q];
      if (a.acts)
        for (int q = 0; q < a.P; ++q) a.acts[(tile_row + p - a.row0) * a.acts_ld + q] = pe[q];
    } else {
      s.n[p] = 0;
      for (int q = 0; q < a.P; ++q) s.pe[q * ROW + p] = T(0);
    }
  }
  __syncthreads();
  mlp_forward<T, TP>(a, a.d, s, cnt, tile_row, true, 0);
  mlp_forward<T, TP>(a, a.w, s, cnt, tile_row, false, 3);
  if (!a.x_c) return;
  for (int p = threadIdx.x; p < cnt; p += blockDim.x) {
    const int64_t r = tile_row + p;
    const T* h = s.head + p * 4;
    const T wgt = sigmoid(h[3]);
    a.weight[r] = wgt;
    for (int k = 0; k < 3; ++k) {
      a.offset[r * 3 + k] = h[k];
      a.x_c[r * 3 + k] = a.points[r * 3 + k] + wgt * h[k];
    }
  }
}

// Reverse pass through one MLP for the tile; its output-layer gradient is in s.head.
template <typename T, int TP>
__device__ void mlp_backward(const DeformArgs<T>& a, const DeformMlp<T>& net, Smem<T>& s, int cnt,
                             int64_t chunk_row, int head_col) {
  const T* delta = s.head + head_col;
  for (int l = net.layers - 1; l >= 1; --l) {
    T* g = (l % 2 == 0) ? s.a : s.b;
    const T* acts = a.acts + chunk_row * a.acts_ld + net.col[l - 1];
    T* deltas = a.deltas + chunk_row * a.acts_ld + net.col[l - 1];
    if (l == net.layers - 1) {
      dense_backward<T, TP, true>(delta, net.dims[l + 1], net.w[l], net.dims[l], acts, a.acts_ld, g,
                                  deltas, cnt);
    } else {
      dense_backward<T, TP, false>(delta, net.dims[l + 1], net.w[l], net.dims[l], acts, a.acts_ld,
                                   g, deltas, cnt);
    }
    __syncthreads();
    delta = g;
  }
}

template <typename T, int TP>
__global__ void __launch_bounds__(kThreads) backward_kernel(const DeformArgs<T> a, int W) {
  extern __shared__ __align__(16) char raw[];
  Smem<T> s = carve<T, TP>(raw, a.P, W);
  const int64_t chunk_row = static_cast<int64_t>(blockIdx.x) * TP;  // chunk-relative
  const int64_t left = a.rows - chunk_row;
  const int cnt = left < TP ? static_cast<int>(left) : TP;
  // Output head: gradients of the offset and of the W-Net logit.
  for (int p = threadIdx.x; p < TP; p += blockDim.x) {
    T* h = s.head + p * 4;
    if (p < cnt) {
      const int64_t cr = chunk_row + p, r = a.row0 + cr;
      const T* act = a.acts + cr * a.acts_ld;
      const T off[3] = {act[a.d.col[a.d.layers - 1]], act[a.d.col[a.d.layers - 1] + 1],
                        act[a.d.col[a.d.layers - 1] + 2]};
      const T wgt = sigmoid(act[a.w.col[a.w.layers - 1]]);
      T d_off[3], d_z;
      deform_head_backward(a.grad_x_c + r * 3, a.grad_offset + r * 3, a.grad_weight[r], off, wgt,
                           d_off, d_z);
      T* del = a.deltas + cr * a.acts_ld;
      for (int k = 0; k < 3; ++k) h[k] = del[a.d.col[a.d.layers - 1] + k] = d_off[k];
      h[3] = del[a.w.col[a.w.layers - 1]] = d_z;
    } else {
      for (int k = 0; k < 4; ++k) h[k] = T(0);
    }
  }
  __syncthreads();
  mlp_backward<T, TP>(a, a.d, s, cnt, chunk_row, 0);
  mlp_backward<T, TP>(a, a.w, s, cnt, chunk_row, 3);
  // Gradient w.r.t. PE from both first layers (their deltas are in the global buffer,
  // written by this block: visible after the barrier above).
  const int hd0 = a.d.dims[1], hw0 = a.w.dims[1];
  for (int q = threadIdx.x; q < a.P; q += blockDim.x) {
    T acc[TP];
#pragma unroll
    for (int p = 0; p < TP; ++p) acc[p] = T(0);
    const T* dd = a.deltas + chunk_row * a.acts_ld + a.d.col[0];
    const T* dw = a.deltas + chunk_row * a.acts_ld + a.w.col[0];
    for (int j = 0; j < hd0; ++j) {
      const T wv = a.d.w[0][static_cast<int64_t>(j) * a.P + q];
#pragma unroll
      for (int p = 0; p < TP; ++p)
        if (p < cnt) acc[p] += dd[p * a.acts_ld + j] * wv;
    }
    for (int j = 0; j < hw0; ++j) {
      const T wv = a.w.w[0][static_cast<int64_t>(j) * a.P + q];
#pragma unroll
      for (int p = 0; p < TP; ++p)
        if (p < cnt) acc[p] += dw[p * a.acts_ld + j] * wv;
    }
#pragma unroll
    for (int p = 0; p < TP; ++p) s.pe[p * a.P + q] = acc[p];
  }
  __syncthreads();
  for (int p = threadIdx.x; p < cnt; p += blockDim.x) {
    const int64_t r = a.row0 + chunk_row + p;
    T gx[3];
    positional_encoding_backward<double>(a.points + r * 3, a.n_freqs, s.pe + p * a.P, gx);
    for (int k = 0; k < 3; ++k) a.grad_points[r * 3 + k] = a.grad_x_c[r * 3 + k] + gx[k];
  }
}

}  // namespace
}  // namespace nofa
