// Dot products and updates over weight rows kept in shared memory zero-padded to whole
// float4s and read as 16-byte broadcasts (4 weights per load: with one load per multiply-add
// the decoder loops were bound by the load/store unit). Shared by the decode_triplane fast
// forward and fused backward (docs/decode_triplane.md, "CUDA paths"). Device code only.
#pragma once

namespace nofa {

// bias + sum_i row[i] * x[i], summed in the order of i.
template <int N>
__device__ __forceinline__ float padded_row_dot(const float* row, float bias, const float (&x)[N]) {
  static_assert(N % 4 == 0, "rows are whole float4s");
  const float4* r = reinterpret_cast<const float4*>(row);
  float s = bias;
#pragma unroll
  for (int q = 0; q < N / 4; ++q) {
    const float4 w = r[q];
    s += w.x * x[4 * q];
    s += w.y * x[4 * q + 1];
    s += w.z * x[4 * q + 2];
    s += w.w * x[4 * q + 3];
  }
  return s;
}

// y[i] += row[i] * a.
template <int N>
__device__ __forceinline__ void padded_row_axpy(const float* row, float a, float (&y)[N]) {
  static_assert(N % 4 == 0, "rows are whole float4s");
  const float4* r = reinterpret_cast<const float4*>(row);
#pragma unroll
  for (int q = 0; q < N / 4; ++q) {
    const float4 w = r[q];
    y[4 * q] += w.x * a;
    y[4 * q + 1] += w.y * a;
    y[4 * q + 2] += w.z * a;
    y[4 * q + 3] += w.w * a;
  }
}

}  // namespace nofa
