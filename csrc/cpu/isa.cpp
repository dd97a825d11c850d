// The CPU instruction-set layer (cpu/isa.h): detection, the override, per-op bookkeeping,
// and the
// functions behind the ops nofa::set_cpu_isa / nofa::cpu_isa_info.
#include "cpu/isa.h"

#include <c10/util/Exception.h>
#include <c10/util/string_view.h>

#include <atomic>
#include <cstdlib>

namespace nofa {
namespace isa {
namespace {

constexpr int kNone = -1;    // nothing forced: detected()
constexpr int kEnvBad = -2;  // NOFA_CPU_ISA is unusable: active() throws env_error()

constexpr int kOps = static_cast<int>(Op::kCount);
std::atomic<int> g_tiers[kOps] = {};  // bit i: tier i implemented; constant-initialised
std::atomic<int64_t> g_calls[kOps][kNumIsa] = {};

bool parse(const std::string& s, int& out) {
  if (s == "auto" || s.empty()) {
    out = kNone;
  } else if (s == "scalar") {
    out = static_cast<int>(Isa::kScalar);
  } else if (s == "avx2") {
    out = static_cast<int>(Isa::kAvx2);
  } else if (s == "avx512") {
    out = static_cast<int>(Isa::kAvx512);
  } else {
    return false;
  }
  return true;
}

std::string env_value() {
  const char* e = std::getenv("NOFA_CPU_ISA");
  return e ? std::string(e) : std::string();
}

// Why a requested tier cannot be used, or "" if it can.
std::string refuse(int want) {
  if (want > static_cast<int>(detected())) {
    return std::string("this CPU does not support the ") + name(static_cast<Isa>(want)) +
           " path (best supported: " + name(detected()) + ")";
  }
  return "";
}

std::string& env_error() {
  static std::string e;
  return e;
}

// The forced tier, initialised from NOFA_CPU_ISA on first use.
std::atomic<int>& forced_state() {
  static std::atomic<int> state = [] {
    int v = kNone;
    const std::string e = env_value();
    if (!parse(e, v)) {
      env_error() = "NOFA_CPU_ISA must be one of auto, scalar, avx2, avx512; got '" + e + "'";
      return kEnvBad;
    }
    if (v != kNone && !refuse(v).empty()) {
      env_error() = "NOFA_CPU_ISA=" + e + ": " + refuse(v);
      return kEnvBad;
    }
    return v;
  }();
  return state;
}

}  // namespace

const char* name(Isa isa) {
  switch (isa) {
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
    default:
      return "scalar";
  }
}

const char* name(Op op) {
  switch (op) {
    case Op::kSampleTriplaneForward:
      return "sample_triplane_forward";
    case Op::kSampleTriplaneBackward:
      return "sample_triplane_backward";
    case Op::kDecodeTriplaneForward:
      return "decode_triplane_forward";
    case Op::kDecodeTriplaneBackward:
      return "decode_triplane_backward";
    case Op::kCompositeRays:
      return "composite_rays";
    case Op::kCompositeRaysMerged:
      return "composite_rays_merged";
    case Op::kDeformPoints:
      return "deform_points";
    case Op::kChannelsLastPlanes:
      return "channels_last_planes";
    default:
      return "?";
  }
}

Isa detected() {
  static const Isa d = [] {
#if NOFA_ISA_X86
    __builtin_cpu_init();
    // libgcc's probe also checks that the OS saves the AVX / AVX-512 register state.
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
      return Isa::kAvx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
    return Isa::kScalar;
  }();
  return d;
}

Isa active() {
  const int f = forced_state().load(std::memory_order_relaxed);
  TORCH_CHECK(f != kEnvBad, "nofa: ", env_error(),
              " (unset it, or call nofa.ops.cpu_isa.set_cpu_isa)");
  return f == kNone ? detected() : static_cast<Isa>(f);
}

std::string set(const std::string& n) {
  int v = kNone;
  TORCH_CHECK(parse(n, v),
              "nofa: set_cpu_isa: isa must be one of auto, scalar, avx2, avx512; got '", n, "'");
  if (v != kNone) {
    const std::string why = refuse(v);
    TORCH_CHECK(why.empty(), "nofa: set_cpu_isa('", n, "'): ", why);
  }
  const int prev = forced_state().exchange(v);
  return prev < 0 ? "auto" : name(static_cast<Isa>(prev));
}

bool implement(Op op, std::initializer_list<Isa> tiers) {
  int mask = 0;
  for (const Isa t : tiers) mask |= 1 << static_cast<int>(t);
  g_tiers[static_cast<int>(op)].fetch_or(mask);
  return true;
}

namespace {
// The best tier of `op` at or below `cap` (scalar is always there).
Isa best_up_to(Op op, Isa cap) {
  const int mask = g_tiers[static_cast<int>(op)].load(std::memory_order_relaxed) | 1;
  for (int t = static_cast<int>(cap); t > 0; --t)
    if (mask & (1 << t)) return static_cast<Isa>(t);
  return Isa::kScalar;
}
}  // namespace

Isa best_of(Op op) { return best_up_to(op, detected()); }

Isa path_for(Op op) { return best_up_to(op, active()); }

void record(Op op, Isa path) {
  g_calls[static_cast<int>(op)][static_cast<int>(path)].fetch_add(1, std::memory_order_relaxed);
}

int64_t calls(Op op, Isa path) {
  return g_calls[static_cast<int>(op)][static_cast<int>(path)].load(std::memory_order_relaxed);
}

std::string info_json() {
  auto q = [](const std::string& s) {
    std::string o = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\') o += '\\';
      o += c;
    }
    return o + "\"";
  };
  const int f = forced_state().load();
  const bool bad = f == kEnvBad;
  std::string s = "{\"detected\": " + q(name(detected()));
  s += ", \"forced\": " + (f >= 0 ? q(name(static_cast<Isa>(f))) : std::string("null"));
  s += ", \"active\": " + (bad ? std::string("null") : q(name(active())));
  s += ", \"env\": " + q(env_value());
  s += ", \"error\": " + (bad ? q(env_error()) : std::string("null"));
  s += ", \"ops\": {";
  for (int o = 0; o < kOps; ++o) {
    const Op op = static_cast<Op>(o);
    if (o) s += ", ";
    s += q(name(op)) + ": {\"best\": " + q(name(best_of(op)));
    s += ", \"path\": " + (bad ? std::string("null") : q(name(path_for(op))));
    s += ", \"calls\": {";
    for (int i = 0; i < kNumIsa; ++i) {
      if (i) s += ", ";
      s += q(name(static_cast<Isa>(i))) + ": " + std::to_string(calls(op, static_cast<Isa>(i)));
    }
    s += "}}";
  }
  return s + "}}";
}

}  // namespace isa

// The ops nofa::set_cpu_isa and nofa::cpu_isa_info (schemas in ops.cpp).
std::string set_cpu_isa_op(c10::string_view n) { return isa::set(std::string(n)); }
std::string cpu_isa_info_op() { return isa::info_json(); }

}  // namespace nofa
