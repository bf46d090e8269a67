// ThreadPool: workers wait on a generation counter (spin, then futex-backed atomic wait) and
// the caller takes part in every job as thread 0.
#include "core/thread_pool.h"

#include <algorithm>

#include "core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace luzao {
namespace {

// Roughly 50-200 microseconds of polling before a thread goes to sleep: long enough to bridge
// the gap between consecutive ops of one token, short enough not to starve other processes.
constexpr int kSpinIterations = 4096;

// Polls cheaply, and every 64th round lets the OS run someone else: when there are more
// runnable threads than cores, the thread we wait for may need our core.
inline void cpu_relax(int iteration) noexcept {
  if ((iteration & 63) == 63) {
    std::this_thread::yield();
    return;
  }
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  n_threads_ = threads;
  workers_.reserve(static_cast<size_t>(threads - 1));
  for (int t = 1; t < threads; ++t) workers_.emplace_back([this, t] { worker_main(t); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::do_share(int thread) noexcept {
  try {
    if (grain_ == 0) {
      const int64_t begin = n_ * thread / n_threads_;
      const int64_t end = n_ * (thread + 1) / n_threads_;
      if (begin < end) thunk_(ctx_, begin, end, thread);
    } else {
      for (;;) {
        const int64_t begin = next_.fetch_add(grain_, std::memory_order_relaxed);
        if (begin >= n_) break;
        thunk_(ctx_, begin, std::min(n_, begin + grain_), thread);
      }
    }
  } catch (...) {
    std::lock_guard lock(error_mutex_);
    if (!error_) error_ = std::current_exception();
  }
}

void ThreadPool::worker_main(int thread) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t gen = generation_.load(std::memory_order_acquire);
    for (int i = 0; gen == seen && i < kSpinIterations; ++i) {
      cpu_relax(i);
      gen = generation_.load(std::memory_order_acquire);
    }
    while (gen == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_.load(std::memory_order_acquire)) return;
    do_share(thread);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_all();
  }
}

void ThreadPool::run(int64_t n, int64_t grain, Thunk thunk, void* ctx) {
  if (n <= 0) return;
  const auto self = std::this_thread::get_id();
  // A job that starts another job on this pool would wait for itself forever.
  LUZAO_CHECK(owner_.load(std::memory_order_relaxed) != self);
  for (const auto& w : workers_) LUZAO_CHECK(w.get_id() != self);

  std::lock_guard call_lock(call_mutex_);
  const bool inline_only = n_threads_ == 1 || (grain == 0 ? n == 1 : n <= grain);
  if (inline_only) {
    owner_.store(self, std::memory_order_relaxed);
    struct Reset {
      std::atomic<std::thread::id>& owner;
      ~Reset() { owner.store(std::thread::id(), std::memory_order_relaxed); }
    } reset{owner_};
    thunk(ctx, 0, n, 0);
    return;
  }

  owner_.store(self, std::memory_order_relaxed);
  thunk_ = thunk;
  ctx_ = ctx;
  n_ = n;
  grain_ = grain;
  next_.store(0, std::memory_order_relaxed);
  error_ = nullptr;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();

  do_share(0);

  int p = pending_.load(std::memory_order_acquire);
  for (int i = 0; p != 0 && i < kSpinIterations; ++i) {
    cpu_relax(i);
    p = pending_.load(std::memory_order_acquire);
  }
  while (p != 0) {
    pending_.wait(p, std::memory_order_acquire);
    p = pending_.load(std::memory_order_acquire);
  }
  owner_.store(std::thread::id(), std::memory_order_relaxed);
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

}  // namespace luzao
