// decode_triplane CUDA forward: one thread block per tile of points. The block gathers the
// tile's mean tri-plane features into shared memory (threads over (point, channel), so
// neighbouring threads read neighbouring channels of the channels-last planes), then the
// hidden layer into shared memory, then the output layer straight to global memory.
#include "common/osg_decoder.h"
#include "common/triplane.h"
#include "cuda/decode_triplane_kernels.h"

namespace nofa {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxTile = 32;
constexpr int64_t kSharedBytes = 48 * 1024;

template <typename T>
__global__ void forward_kernel(const T* __restrict__ planes_cl, const T* __restrict__ points,
                               const T* __restrict__ w0, const T* __restrict__ b0,
                               const T* __restrict__ w1, const T* __restrict__ b1,
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
    const T x = points[i * 3 + 0] * scale, y = points[i * 3 + 1] * scale, z = points[i * 3 + 2] * scale;
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
    for (int64_t c = 0; c < C; ++c) s += w0[j * C + c] * f[p * C + c];
    T unused;
    h[idx] = softplus(s, unused);
  }
  __syncthreads();
  for (int64_t idx = threadIdx.x; idx < n_pts * O; idx += blockDim.x) {
    const int64_t o = idx % O, p = idx / O, i = i0 + p;
    T s = b1[o];
    for (int64_t j = 0; j < Hd; ++j) s += w1[o * Hd + j] * h[p * Hd + j];
    if (o == 0) {
      density[i] = s;
    } else {
      T unused;
      features[i * (O - 1) + o - 1] = osg_feature(s, unused);
    }
  }
}

}  // namespace

int64_t decode_triplane_tile(int64_t C, int64_t Hd, int64_t elem_size) {
  const int64_t fit = kSharedBytes / ((C + Hd) * elem_size);
  return fit < kMaxTile ? fit : kMaxTile;
}

template <typename T>
void launch_decode_triplane_forward(const T* planes_cl, const T* points, const T* w0, const T* b0,
                                    const T* w1, const T* b1, T* density, T* features, int64_t N,
                                    int64_t M, int64_t C, int64_t H, int64_t W, int64_t Hd, int64_t O,
                                    T scale, cudaStream_t stream) {
  const int64_t P = N * M;
  const int64_t tile = decode_triplane_tile(C, Hd, sizeof(T));
  if (P == 0 || tile < 1) return;
  const unsigned int blocks = static_cast<unsigned int>((P + tile - 1) / tile);
  const size_t smem = static_cast<size_t>(tile * (C + Hd)) * sizeof(T);
  forward_kernel<T><<<blocks, kThreads, smem, stream>>>(planes_cl, points, w0, b0, w1, b1, density,
                                                        features, P, M, C, H, W, Hd, O, scale, tile);
}

#define NOFA_INSTANTIATE(T)                                                                        \
  template void launch_decode_triplane_forward<T>(const T*, const T*, const T*, const T*, const T*, \
                                                  const T*, T*, T*, int64_t, int64_t, int64_t,     \
                                                  int64_t, int64_t, int64_t, int64_t, T, cudaStream_t);
NOFA_INSTANTIATE(float)
NOFA_INSTANTIATE(double)
#undef NOFA_INSTANTIATE

}  // namespace nofa
