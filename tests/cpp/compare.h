// Comparison by relative error for the CPU-thread runs of CUDA kernel sources
// (tests/cpp/test_*_emulated.cpp): a whole tensor against its double-precision reference,
// optionally only the entries a mask keeps (rows of non-finite inputs).
#pragma once
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "check.h"

namespace ref {

// ||got - want|| / ||want|| over the entries keep marks (all when keep is empty); infinite
// for a size mismatch or a non-finite kept entry of got.
inline double rel_err(const std::vector<double>& got, const std::vector<double>& want,
                      const std::vector<char>& keep = {}) {
  if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!keep.empty() && !keep[i]) continue;
    if (!std::isfinite(got[i])) return std::numeric_limits<double>::infinity();
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / (den > 1e-300 ? den : 1e-300));
}

// CHECK(rel_err(got, want, keep) <= tol), naming what failed.
inline void expect_rel(const std::string& what, const std::vector<double>& got,
                       const std::vector<double>& want, double tol,
                       const std::vector<char>& keep = {}) {
  const double e = rel_err(got, want, keep);
  if (!(e <= tol)) std::fprintf(stderr, "%s rel err %g (tol %g)\n", what.c_str(), e, tol);
  CHECK(e <= tol);
}

}  // namespace ref
