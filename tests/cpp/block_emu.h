// A CUDA launch <<<grid, block, shared bytes>>> on std::threads, for the CPU-thread runs of
// CUDA kernel sources (tests/cpp/test_*_emulated.cpp). BlockRunner keeps kMaxBlock (256)
// persistent std::threads (a launch wakes only the ones it uses) and runs a launch in one of
// three ways:
//  - launch: a whole block alive at once (`block` threads, one per CUDA thread, up to 256),
//    walking the grid's blocks one after another and meeting at a barrier at the end of each
//    block, so every schedule of a block's threads the OS picks is one a GPU may run. With
//    dynamic shared memory (tests/cpp/smem_emu.h) each block starts with the launch's size
//    NaN-filled and a guard past it; a block that changed the guard counts in shared_overruns.
//  - launch_warps: one warp (32 threads) alive at a time, walking the grid's warps one after
//    another; for kernels whose lanes talk only through shuffles (no shared memory, no
//    __syncthreads: a __syncthreads there ends the program).
//  - launch_serial: the grid's threads one after another on the calling thread, for kernels
//    whose threads never communicate (no shared memory, barriers or shuffles).
// __syncthreads is a std::barrier of the block whose completion step checks that every thread
// arrived from the same __syncthreads, or every one from the end of the block (a mismatch
// counts in divergent_barriers); each warp's 32 threads share a barrier for __shfl_xor_sync
// (tests/cpp/cuda_emu.h); atomicAdd is std::atomic_ref. A block (or warp) that does not
// finish within the runner's watchdog limit (threads waiting at different barriers, a lane
// missing a shuffle) ends the program with a message instead of hanging.
// Include after tests/cpp/cuda_emu.h.
#pragma once
#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <semaphore>
#include <thread>
#include <vector>

#include "smem_emu.h"

namespace emu {
constexpr int kMaxBlock = kWarpSize * kMaxWarps;
constexpr int kUnitEnd = -1;  // the "line" of the barrier at the end of a block (or warp)
inline thread_local int worker_slot = 0;
inline int barrier_line[kMaxBlock];
inline int barrier_threads = 0;  // threads meeting at block_barrier
inline bool warps_only = false;  // a launch_warps launch is running
inline std::function<void()> on_unit_end;
inline std::atomic<int> divergent_barriers{0}, shared_overruns{0};

// Runs once per barrier phase, after every thread has arrived and before any leaves.
struct SameBarrier {
  void operator()() noexcept {
    const int line = barrier_line[0];
    for (int i = 1; i < barrier_threads; ++i) {
      if (barrier_line[i] != line) divergent_barriers.fetch_add(1);
    }
    if (line == kUnitEnd) on_unit_end();
  }
};
inline std::barrier<SameBarrier>* block_barrier = nullptr;

inline void sync_threads(int line) {
  if (warps_only) {
    std::fprintf(stderr,
                 "__syncthreads (line %d) in a warp-by-warp launch: use BlockRunner::launch\n",
                 line);
    std::_Exit(1);
  }
  barrier_line[worker_slot] = line;
  block_barrier->arrive_and_wait();
}

class BlockRunner {
 public:
  explicit BlockRunner(int watchdog_seconds = 120)
      : limit_(std::chrono::seconds(watchdog_seconds)) {
    for (int t = 0; t < kMaxBlock; ++t) go_.push_back(std::make_unique<std::binary_semaphore>(0));
    for (int t = 0; t < kMaxBlock; ++t) workers_.emplace_back([this, t] { work(t); });
    watchdog_ = std::thread([this] { watch(); });
  }
  ~BlockRunner() {
    {
      std::lock_guard<std::mutex> lock(watch_mu_);
      quit_ = true;
    }
    watch_cv_.notify_one();  // the watchdog ends now, not at its next poll
    for (auto& g : go_) g->release();
    for (auto& w : workers_) w.join();
    watchdog_.join();
  }
  // kernel() runs once per CUDA thread, with thread_idx / block_idx set; `shared_bytes` is the
  // launch's dynamic shared memory (at most the program's NOFA_EMU_DYNAMIC_SHARED capacity).
  void launch(unsigned int grid, unsigned int block, std::function<void()> kernel,
              size_t shared_bytes = 0) {
    run(grid, block, false, std::move(kernel), shared_bytes);
  }
  // The same launch, one warp alive at a time.
  void launch_warps(unsigned int grid, unsigned int block, std::function<void()> kernel) {
    run(grid, block, true, std::move(kernel), 0);
  }
  // The launch's threads one after another on the calling thread (watched as well: a thread
  // that never returns ends the program).
  void launch_serial(unsigned int grid, unsigned int block, const std::function<void()>& kernel) {
    grid_dim.x = grid;
    block_dim.x = block;
    progress_at_ = now();
    running_ = true;
    for (unsigned int b = 0; b < grid; ++b) {
      for (unsigned int t = 0; t < block; ++t) {
        block_idx.x = b;
        thread_idx.x = t;
        kernel();
      }
      progress_at_ = now();
    }
    running_ = false;
  }

 private:
  void run(unsigned int grid, unsigned int block, bool by_warp, std::function<void()> kernel,
           size_t shared_bytes) {
    if (grid == 0) return;
    if (block == 0 || block > kMaxBlock || block % kWarpSize != 0) {
      std::fprintf(stderr, "BlockRunner: block of %u threads not supported\n", block);
      std::exit(1);
    }
    const DynamicShared& sm = dynamic_shared;
    if (shared_bytes > 0 && (sm.base == nullptr || shared_bytes > sm.capacity)) {
      std::fprintf(stderr,
                   "BlockRunner: %zu bytes of dynamic shared memory, the program holds %zu\n",
                   shared_bytes, sm.base ? sm.capacity : size_t{0});
      std::exit(1);
    }
    grid_dim.x = grid;
    block_dim.x = block;
    warps_only = by_warp;
    barrier_threads = by_warp ? kWarpSize : static_cast<int>(block);
    std::barrier<SameBarrier> unit_bar(barrier_threads);
    std::vector<std::unique_ptr<std::barrier<>>> warp_bars;
    for (unsigned int w = 0; w < block / kWarpSize; ++w) {
      if (!by_warp || w == 0) warp_bars.push_back(std::make_unique<std::barrier<>>(kWarpSize));
      warp_barrier[w] = warp_bars.back().get();  // one warp at a time: all share one
    }
    block_barrier = &unit_bar;
    shared_bytes_ = shared_bytes;
    use_shared_ = sm.base != nullptr && !by_warp;
    if (use_shared_) sm.fill(shared_bytes);
    unit_ = 0;
    on_unit_end = [this] { unit_end(); };
    kernel_ = std::move(kernel);
    progress_at_ = now();
    running_ = true;
    // Only the launch's threads wake (a launch may be short: waking all 256 costs more).
    std::latch done(barrier_threads);
    done_ = &done;
    for (int t = 0; t < barrier_threads; ++t) go_[t]->release();
    done.wait();
    running_ = false;
    block_barrier = nullptr;
    warps_only = false;
  }
  // In the barrier's completion step at the end of a block (or warp): the others wait.
  void unit_end() {
    if (use_shared_) {
      if (!dynamic_shared.intact(shared_bytes_)) {
        std::fprintf(stderr, "block %u wrote shared memory past the launch's %zu bytes\n", unit_,
                     shared_bytes_);
        shared_overruns.fetch_add(1);
      }
      dynamic_shared.fill(shared_bytes_);  // nothing carries over to the next block
    }
    ++unit_;
    progress_at_ = now();
  }
  static void end_unit() {
    barrier_line[worker_slot] = kUnitEnd;
    block_barrier->arrive_and_wait();
  }
  void work(int t) {
    worker_slot = t;
    const unsigned int slot = static_cast<unsigned int>(t);
    for (;;) {
      go_[t]->acquire();
      if (quit_) return;
      if (!warps_only) {
        thread_idx.x = slot;
        for (unsigned int b = 0; b < grid_dim.x; ++b) {
          block_idx.x = b;
          kernel_();
          end_unit();
        }
      } else {
        for (unsigned int b = 0; b < grid_dim.x; ++b) {
          for (unsigned int w = 0; w < block_dim.x / kWarpSize; ++w) {
            block_idx.x = b;
            thread_idx.x = w * kWarpSize + slot;
            kernel_();
            end_unit();
          }
        }
      }
      done_->count_down();
    }
  }
  static std::chrono::steady_clock::rep now() {
    return std::chrono::steady_clock::now().time_since_epoch().count();
  }
  void watch() {
    std::unique_lock<std::mutex> lock(watch_mu_);
    while (!watch_cv_.wait_for(lock, std::chrono::milliseconds(200),
                               [this] { return quit_.load(); })) {
      if (running_ && now() - progress_at_.load() > limit_.count()) {
        std::fprintf(
            stderr,
            "a block did not finish in %lld s: threads wait at different barriers or shuffles\n",
            static_cast<long long>(
                std::chrono::duration_cast<std::chrono::seconds>(limit_).count()));
        std::_Exit(1);
      }
    }
  }
  std::vector<std::unique_ptr<std::binary_semaphore>> go_;  // one per worker: its launch starts
  std::latch* done_ = nullptr;
  const std::chrono::steady_clock::duration limit_;
  std::vector<std::thread> workers_;
  std::thread watchdog_;
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  std::function<void()> kernel_;
  size_t shared_bytes_ = 0;
  bool use_shared_ = false;
  unsigned int unit_ = 0;
  std::atomic<bool> quit_{false}, running_{false};
  std::atomic<std::chrono::steady_clock::rep> progress_at_{0};
};
}  // namespace emu

#define __launch_bounds__(n)
#define __shared__
#define __align__(n) __attribute__((aligned(n)))
#define __syncthreads() emu::sync_threads(__LINE__)
inline float atomicAdd(float* p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }
inline double atomicAdd(double* p, double v) { return std::atomic_ref<double>(*p).fetch_add(v); }
// sm_90's 16-byte vector atomic: its address must be 16-byte aligned (a misaligned one is a
// fault on the device, so the stand-in stops the test).
inline float4 atomicAdd(float4* p, float4 v) {
  if (reinterpret_cast<uintptr_t>(p) % 16 != 0) {
    std::fprintf(stderr, "atomicAdd(float4*) at a misaligned address %p\n", static_cast<void*>(p));
    std::abort();
  }
  float* f = reinterpret_cast<float*>(p);
  return make_float4(atomicAdd(f + 0, v.x), atomicAdd(f + 1, v.y), atomicAdd(f + 2, v.z),
                     atomicAdd(f + 3, v.w));
}
