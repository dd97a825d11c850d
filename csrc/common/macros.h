// Shared by the CPU (g++) and CUDA (nvcc) builds: no torch headers here.
#pragma once

#if defined(__CUDACC__)
#define NOFA_HD __host__ __device__ __forceinline__
#else
#define NOFA_HD inline
#endif

#include <cstdint>
