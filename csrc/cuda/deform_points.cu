// Launchers of the deform_points CUDA kernels (docs/deformation.md, "How the kernels work"):
// the kernels, and how they split the work, are in cuda/deform_points_device.h (device code
// only, so that tests/cpp/test_deform_emulated.cpp can run the same source on the CPU).
// Raw pointers, no torch headers; declared in cuda/deform_points_cuda.cpp, which calls them.
#include "cuda/deform_points_device.h"

namespace nofa {
namespace {

template <typename T>
unsigned int tiles_for(int64_t rows) {
  return static_cast<unsigned int>((rows + Tile<T>::P - 1) / Tile<T>::P);
}

}  // namespace

template <typename T>
size_t deform_smem_bytes(int P, int max_width) {
  return block_smem_bytes<T>(P, max_width);
}

template <typename T>
void launch_deform_forward(const DeformArgs<T>& a, int max_width, cudaStream_t stream) {
  const size_t smem = deform_smem_bytes<T>(a.P, max_width);
  if (a.rows == 0 || smem == 0) return;  // smem 0: unsupported sizes, refused by the glue
  auto kernel = forward_kernel<T, Tile<T>::P>;
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  kernel<<<tiles_for<T>(a.rows), kThreads, smem, stream>>>(a, max_width);
}

template <typename T>
void launch_deform_backward(const DeformArgs<T>& a, int max_width, cudaStream_t stream) {
  const size_t smem = deform_smem_bytes<T>(a.P, max_width);
  if (a.rows == 0 || smem == 0) return;
  auto kernel = backward_kernel<T, Tile<T>::P>;
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  kernel<<<tiles_for<T>(a.rows), kThreads, smem, stream>>>(a, max_width);
}

#define NOFA_INSTANTIATE(T)                                                        \
  template size_t deform_smem_bytes<T>(int, int);                                  \
  template void launch_deform_forward<T>(const DeformArgs<T>&, int, cudaStream_t); \
  template void launch_deform_backward<T>(const DeformArgs<T>&, int, cudaStream_t);
NOFA_INSTANTIATE(float)
NOFA_INSTANTIATE(double)
#undef NOFA_INSTANTIATE

}  // namespace nofa
