// A persistent pool of worker threads for data-parallel loops: workers are created once and
// spin briefly, then sleep, between jobs; a parallel_for allocates nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace luzao {

// Thread-safety: parallel_for may be called from any thread; concurrent calls are serialised.
// A job must not call parallel_for on the same pool (that would deadlock; checked).
class ThreadPool {
 public:
  // `threads` counts the calling thread too: ThreadPool(1) runs everything inline.
  // 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const noexcept { return n_threads_; }

  // Splits [0, n) into size() contiguous, nearly equal ranges and calls fn(begin, end, thread)
  // once per non-empty range, thread in [0, size()). Returns when all ranges are done; the
  // first exception thrown by fn is rethrown here.
  template <typename Fn>
  void parallel_for(int64_t n, Fn&& fn) {
    run(n, 0, &invoke<std::remove_reference_t<Fn>>, erase(fn));
  }

  // Hands out chunks of `grain` indices on demand (for uneven work): fn(begin, end, thread)
  // is called for each chunk, by whichever thread takes it.
  template <typename Fn>
  void parallel_for_dynamic(int64_t n, int64_t grain, Fn&& fn) {
    run(n, grain < 1 ? 1 : grain, &invoke<std::remove_reference_t<Fn>>, erase(fn));
  }

 private:
  using Thunk = void (*)(void*, int64_t, int64_t, int);
  template <typename Fn>
  static void* erase(Fn& fn) {
    return const_cast<void*>(static_cast<const void*>(std::addressof(fn)));
  }
  template <typename Fn>
  static void invoke(void* ctx, int64_t begin, int64_t end, int thread) {
    (*static_cast<Fn*>(ctx))(begin, end, thread);
  }

  void run(int64_t n, int64_t grain, Thunk thunk, void* ctx);
  void worker_main(int thread);
  void do_share(int thread) noexcept;

  int n_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex call_mutex_;

  // The current job, published by bumping generation_.
  Thunk thunk_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
  int64_t grain_ = 0;  // 0: static split
  std::atomic<int64_t> next_{0};
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::atomic<std::thread::id> owner_{};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

}  // namespace luzao
