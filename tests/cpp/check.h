// Minimal check macros for the standalone C++ tests (each test file is one program).
#pragma once
#include <cmath>
#include <cstdio>

static int nofa_failures = 0;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++nofa_failures;                                                              \
    }                                                                               \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                             \
  do {                                                                                    \
    const double _a = (a), _b = (b);                                                      \
    if (!(std::fabs(_a - _b) <= (tol))) {                                                 \
      std::fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %.9g vs %s = %.9g (tol %g)\n", \
                   __FILE__, __LINE__, #a, _a, #b, _b, (double)(tol));                    \
      ++nofa_failures;                                                                    \
    }                                                                                     \
  } while (0)

#define TEST_MAIN_END()                                            \
  do {                                                             \
    if (nofa_failures)                                             \
      std::fprintf(stderr, "%d check(s) failed\n", nofa_failures); \
    else                                                           \
      std::printf("all checks passed\n");                          \
    return nofa_failures ? 1 : 0;                                  \
  } while (0)
