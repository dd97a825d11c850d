// float16 / bfloat16 loads and stores for the CUDA kernels that read half-precision planes
// (device code, included by .cu files only; the build defines __CUDA_NO_HALF_CONVERSIONS__,
// so conversions are explicit).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace nofa {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ double to_float(double v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename P>
__device__ __forceinline__ P from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

}  // namespace nofa
