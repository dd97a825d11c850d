// Transparent huge pages for the large buffers the CPU kernels allocate and fill.
//
// A fresh 50 MB output (e.g. the [393k, 32] features of one render) with 4 KiB pages costs
// ~12k page faults on first touch, which on the machines we measured took as long as
// computing its contents; asking the kernel for huge pages on that range (madvise; honoured
// when /sys/kernel/mm/transparent_hugepage/enabled is "madvise" or "always") cuts the faults
// 500-fold. Only the 2 MiB-aligned interior of buffers of at least 8 MiB is advised; the
// call is a hint, its failure (other OSes, THP off) changes nothing but speed.
// NOFA_HUGE_PAGES=0 (read once) turns the hint off.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <cstdlib>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace nofa {

inline void advise_huge_pages(const at::Tensor& t) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(1) << 21;
  const uintptr_t bytes = static_cast<uintptr_t>(t.storage().nbytes());
  if (bytes < (uintptr_t(8) << 20) || !t.device().is_cpu()) return;
  static const bool off = [] {
    const char* env = std::getenv("NOFA_HUGE_PAGES");
    return env && env[0] == '0';
  }();
  if (off) return;
  const uintptr_t p = reinterpret_cast<uintptr_t>(t.storage().data());
  const uintptr_t a = (p + kHuge - 1) & ~(kHuge - 1), e = (p + bytes) & ~(kHuge - 1);
  if (e > a) madvise(reinterpret_cast<void*>(a), e - a, MADV_HUGEPAGE);
#else
  (void)t;
#endif
}

// at::empty plus the hint, for outputs the kernels write in full.
inline at::Tensor empty_large(at::IntArrayRef sizes, const at::TensorOptions& options) {
  auto t = at::empty(sizes, options);
  advise_huge_pages(t);
  return t;
}

}  // namespace nofa
