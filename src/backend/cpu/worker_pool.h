// The cpu backend's worker pool: like core's ThreadPool (same calls, persistent threads, nothing
// allocated per job), but a job ends when its chunks are done, not when every worker has
// checked in. Workers claim chunks with a counter tagged by the job's generation, so a worker
// the OS has descheduled (a busy machine) leaves its share to the running threads instead of
// stalling each op until it is scheduled again; a stale worker's claim simply fails.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace luzao::cpu {

// Thread-safety: calls from several threads are serialised. A job must not call the pool.
class WorkerPool {
 public:
  // `threads` counts the calling thread: WorkerPool(1) runs everything inline; 0 means
  // std::thread::hardware_concurrency().
  explicit WorkerPool(int threads = 0);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int size() const noexcept { return n_threads_; }

  // fn(begin, end, thread) over [0, n) in about size() equal chunks, thread in [0, size()).
  // Which thread runs which chunk is not fixed. The first exception thrown is rethrown here.
  template <typename Fn>
  void parallel_for(int64_t n, Fn&& fn) {
    const int64_t chunk = (n + n_threads_ - 1) / n_threads_;
    run(n, chunk < 1 ? 1 : chunk, &invoke<std::remove_reference_t<Fn>>, erase(fn));
  }
  // The same with chunks of `grain` indices.
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
  // Claims and runs chunks of job `gen` until none is left (or the job is no longer current).
  void work(uint64_t gen, int thread) noexcept;

  static constexpr int kIndexBits = 40;  // claim word: generation tag above, next index below
  static constexpr uint64_t kIndexMask = (uint64_t{1} << kIndexBits) - 1;

  int n_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex call_mutex_;
  std::atomic<std::thread::id> owner_{};

  // The current job; fields are atomics because a stale worker may read them while a new job is
  // being set up (its claim then fails).
  std::atomic<Thunk> thunk_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<int64_t> n_{0};
  std::atomic<int64_t> grain_{0};
  std::atomic<uint64_t> claim_{0};  // (generation tag << kIndexBits) | next index
  std::atomic<int64_t> done_{0};    // indices finished in the current job
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

}  // namespace luzao::cpu
