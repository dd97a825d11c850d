// How much dynamic shared memory a block may use on the current device (host code): the
// opt-in limit (cudaFuncSetAttribute up to it), or the 48 KiB every device gives when the
// device cannot be asked. Shared by the decode_triplane launchers' fast-path tests.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace nofa {

constexpr int64_t kDefaultSharedBytes = 48 * 1024;

inline bool fits_shared_memory(int64_t bytes) {
  int device = 0, optin = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) !=
          cudaSuccess) {
    cudaGetLastError();  // clear it, so that the next launch check does not report it
    return bytes <= kDefaultSharedBytes;
  }
  return bytes <= optin;
}

}  // namespace nofa
