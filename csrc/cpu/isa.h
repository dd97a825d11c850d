// The CPU instruction-set layer: which vector path every CPU op takes (docs/cpu_isa.md).
//
// Three tiers, each a superset of the one before: scalar (portable C++, what the compiler
// makes of it at the baseline ISA; ATen's GEMMs keep their own dispatch), avx2 (AVX2 + FMA,
// 8 floats) and avx512 (AVX-512 F/BW/DQ/VL, 16 floats). The CPU is probed once; the
// environment variable NOFA_CPU_ISA=scalar|avx2|avx512 (read once) or the op
// nofa::set_cpu_isa caps the tier, and asking for a tier the CPU lacks is an error. Every
// op asks path_for(op) -- the best path it implements at or below the active tier -- and
// records the path that actually ran, so tests can check that a forced path really ran.
//
// NOFA_ISA_X86 is the one compile guard: the hand-written AVX2 / AVX-512 code exists only
// on x86-64 with GCC-compatible compilers (target attributes); elsewhere every tier
// resolves to scalar at run time and the vector code is not compiled.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>

#include <c10/util/string_view.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define NOFA_ISA_X86 1
#else
#define NOFA_ISA_X86 0
#endif

// Function attributes that compile one function for a tier (callees marked
// NOFA_ISA_INLINE are inlined into it and vectorised for that tier).
#define NOFA_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define NOFA_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,prefer-vector-width=512")))
#define NOFA_ISA_INLINE inline __attribute__((always_inline))
#define NOFA_ISA_LAMBDA __attribute__((always_inline))

namespace nofa {
namespace isa {

enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };
constexpr int kNumIsa = 3;

// The CPU ops, as cpu_isa_info names them.
enum class Op : int {
  kSampleTriplaneForward,
  kSampleTriplaneBackward,
  kDecodeTriplaneForward,
  kDecodeTriplaneBackward,
  kCompositeRays,
  kCompositeRaysMerged,
  kDeformPoints,
  kChannelsLastPlanes,
  kCount
};

const char* name(Isa isa);
const char* name(Op op);

// The best tier this CPU (and OS) supports; probed once.
Isa detected();
// The tier in force: the forced one, else detected(). Throws if NOFA_CPU_ISA is invalid or
// asks for a tier the CPU lacks (until set() replaces it).
Isa active();
// Force a tier ("scalar", "avx2", "avx512") or go back to detection ("auto"); returns the
// previous setting's name. Throws for unknown names and tiers the CPU lacks.
std::string set(const std::string& name);

// The best tier `op` implements that this CPU supports.
Isa best_of(Op op);
// The path `op` takes for inputs its vector code covers: the best tier it implements at
// or below active().
Isa path_for(Op op);
// Declares the tiers `op` has code for in this build (scalar always), from static
// initialisers of the op sources. Returns true so it can initialise a static.
bool implement(Op op, std::initializer_list<Isa> tiers);
// Counts one call of `op` that ran `path` (after every fallback: what really ran).
void record(Op op, Isa path);
int64_t calls(Op op, Isa path);

// JSON: {"detected", "forced", "active", "env", "error", "ops": {op: {"best", "path",
// "calls": {tier: n}}}}.
std::string info_json();

// Runs f() compiled for tier t: f is a lambda marked NOFA_ISA_LAMBDA whose callees are
// NOFA_ISA_INLINE, so the whole body is inlined into (and auto-vectorised for) the copy of
// this function made for that tier.
template <class F>
void run_scalar(const F& f) {
  f();
}
#if NOFA_ISA_X86
template <class F>
NOFA_TARGET_AVX2 void run_avx2(const F& f) {
  f();
}
template <class F>
NOFA_TARGET_AVX512 void run_avx512(const F& f) {
  f();
}
#endif
template <class F>
void run(Isa t, const F& f) {
#if NOFA_ISA_X86
  if (t == Isa::kAvx512) return run_avx512(f);
  if (t == Isa::kAvx2) return run_avx2(f);
#endif
  run_scalar(f);
}

}  // namespace isa

// The ops nofa::set_cpu_isa(str) -> str (previous setting) and nofa::cpu_isa_info() -> str.
std::string set_cpu_isa_op(c10::string_view isa);
std::string cpu_isa_info_op();

}  // namespace nofa
