// Activations of EG3D's OSG decoder (docs/decode_triplane.md), shared by the CPU and CUDA
// decode_triplane kernels: x = fc1(softplus(fc0(f))); density = x[0]; features = sigmoid(x[1:])
// * 1.002 - 0.001.
#pragma once
#include <cmath>

#include "common/macros.h"

namespace nofa {

// softplus with PyTorch's defaults (beta 1, threshold 20) and its derivative sigmoid(z),
// written as PyTorch's softplus backward does (e / (e + 1), e = exp(z)), sharing the exp.
// Also the compositor's density activation (common/composite.h).
template <typename T>
NOFA_HD T softplus(T z, T& grad) {
  if (z > T(20)) {
    grad = T(1);
    return z;
  }
  const T e = std::exp(z);
  grad = e / (e + T(1));
  return std::log1p(e);
}

// EG3D's widened sigmoid, so that 0 and 1 are reachable; `grad` is its derivative.
template <typename T>
NOFA_HD T osg_feature(T x, T& grad) {
  const T s = T(1) / (T(1) + std::exp(-x));
  grad = s * (T(1) - s) * T(1.002);
  return s * T(1.002) - T(0.001);
}

}  // namespace nofa
