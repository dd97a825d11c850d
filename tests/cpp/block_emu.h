// A CUDA launch <<<grid, block>>> on std::threads, for the CPU-thread runs of CUDA kernel
// sources that need whole blocks alive at once (tests/cpp/test_sample_triplane_emulated.cpp,
// test_decode_forward_emulated.cpp): `block` persistent std::threads (one per CUDA thread of
// a block, up to 256) walk the grid's blocks one after another, meeting at a barrier at the
// end of each block, so every schedule of a block's threads the OS picks is one a GPU may
// run. __syncthreads is a std::barrier of the block that also checks every thread reached the
// same barrier (a mismatch counts in divergent_barriers); each warp's 32 threads share a
// barrier for __shfl_xor_sync (tests/cpp/cuda_emu.h); atomicAdd is std::atomic_ref. A launch
// that does not finish in 120 s (threads waiting at different barriers, a lane missing a
// shuffle) ends the program with a message instead of hanging.
// Include after tests/cpp/cuda_emu.h.
#pragma once
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace emu {
constexpr int kMaxBlock = kWarpSize * kMaxWarps;
inline std::barrier<>* block_barrier = nullptr;
inline int barrier_line[kMaxBlock];
inline std::atomic<int> divergent_barriers{0};

inline void sync_threads(int line) {
  const int t = static_cast<int>(thread_idx.x);
  barrier_line[t] = line;
  block_barrier->arrive_and_wait();
  if (t == 0) {
    for (unsigned int i = 0; i < block_dim.x; ++i) {
      if (barrier_line[i] != line) divergent_barriers.fetch_add(1);
    }
  }
  block_barrier->arrive_and_wait();
}

class BlockRunner {
 public:
  BlockRunner() : start_(kMaxBlock + 1), done_(kMaxBlock + 1) {
    for (int t = 0; t < kMaxBlock; ++t) workers_.emplace_back([this, t] { work(t); });
    watchdog_ = std::thread([this] { watch(); });
  }
  ~BlockRunner() {
    quit_ = true;
    start_.arrive_and_wait();
    for (auto& w : workers_) w.join();
    watchdog_.join();
  }
  // kernel() runs once per CUDA thread, with thread_idx / block_idx set.
  void launch(unsigned int grid, unsigned int block, std::function<void()> kernel) {
    if (grid == 0) return;
    if (block == 0 || block > kMaxBlock || block % kWarpSize != 0) {
      std::fprintf(stderr, "BlockRunner: block of %u threads not supported\n", block);
      std::exit(1);
    }
    grid_dim.x = grid;
    block_dim.x = block;
    std::barrier<> block_bar(block);
    std::vector<std::unique_ptr<std::barrier<>>> warp_bars;
    for (unsigned int w = 0; w < block / kWarpSize; ++w) {
      warp_bars.push_back(std::make_unique<std::barrier<>>(kWarpSize));
      warp_barrier[w] = warp_bars.back().get();
    }
    block_barrier = &block_bar;
    kernel_ = std::move(kernel);
    started_at_ = std::chrono::steady_clock::now().time_since_epoch().count();
    running_ = true;
    start_.arrive_and_wait();
    done_.arrive_and_wait();
    running_ = false;
    block_barrier = nullptr;
  }

 private:
  void work(int t) {
    for (;;) {
      start_.arrive_and_wait();
      if (quit_) return;
      if (static_cast<unsigned int>(t) < block_dim.x) {
        thread_idx.x = static_cast<unsigned int>(t);
        for (unsigned int b = 0; b < grid_dim.x; ++b) {
          block_idx.x = b;
          kernel_();
          block_barrier->arrive_and_wait();  // the block's shared memory is the next one's
        }
      }
      done_.arrive_and_wait();
    }
  }
  void watch() {
    while (!quit_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
      if (running_ && now - started_at_.load() > std::chrono::steady_clock::duration(std::chrono::seconds(120)).count()) {
        std::fprintf(stderr, "a launch did not finish in 120 s: threads wait at different barriers or shuffles\n");
        std::_Exit(1);
      }
    }
  }
  std::barrier<> start_, done_;
  std::vector<std::thread> workers_;
  std::thread watchdog_;
  std::function<void()> kernel_;
  std::atomic<bool> quit_{false}, running_{false};
  std::atomic<std::chrono::steady_clock::rep> started_at_{0};
};
}  // namespace emu

#define __launch_bounds__(n)
#define __shared__
#define __align__(n) __attribute__((aligned(n)))
#define __syncthreads() emu::sync_threads(__LINE__)
inline float atomicAdd(float* p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }
inline double atomicAdd(double* p, double v) { return std::atomic_ref<double>(*p).fetch_add(v); }
