// WorkerPool: chunks are claimed from one atomic word, (generation tag << 40) | next index.
// Starting a job first retags the word with an index past any job (so a claim still carrying an
// old tag, or racing the set-up, fails), then writes the job and opens the word at index 0.
// A claim that succeeds therefore belongs to a live job whose fields are visible (seq_cst), and
// the caller returns once the finished-index count reaches n.
#include "backend/cpu/worker_pool.h"

#include <algorithm>

#include "core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace luzao::cpu {
namespace {

// About 20-50 microseconds of polling before a worker sleeps: consecutive ops of one token
// arrive well within that, and a sleeping worker costs nothing but its share of the next job.
constexpr int kSpinIterations = 2048;
constexpr uint64_t kTagMask = (uint64_t{1} << 24) - 1;

inline void pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace

WorkerPool::WorkerPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  n_threads_ = threads;
  workers_.reserve(static_cast<size_t>(threads - 1));
  for (int t = 1; t < threads; ++t) workers_.emplace_back([this, t] { worker_main(t); });
}

WorkerPool::~WorkerPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (auto& w : workers_) w.join();
}

void WorkerPool::work(uint64_t gen, int thread) noexcept {
  const uint64_t tag = gen & kTagMask;
  for (;;) {
    uint64_t cur = claim_.load();
    if ((cur >> kIndexBits) != tag) return;
    const auto begin = static_cast<int64_t>(cur & kIndexMask);
    const int64_t n = n_.load();
    const int64_t grain = grain_.load();
    if (begin >= n) return;
    if (!claim_.compare_exchange_weak(cur, cur + static_cast<uint64_t>(grain))) continue;
    const int64_t end = std::min(n, begin + grain);
    try {
      thunk_.load()(ctx_.load(), begin, end, thread);
    } catch (...) {
      std::lock_guard lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
    done_.fetch_add(end - begin);
  }
}

void WorkerPool::worker_main(int thread) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = generation_.load();
    for (int i = 0; gen == seen && i < kSpinIterations; ++i) {
      pause();
      gen = generation_.load();
    }
    while (gen == seen) {
      generation_.wait(seen);
      gen = generation_.load();
    }
    seen = gen;
    if (stop_.load()) return;
    work(gen, thread);
  }
}

void WorkerPool::run(int64_t n, int64_t grain, Thunk thunk, void* ctx) {
  if (n <= 0) return;
  LUZAO_CHECK(n < (int64_t{1} << (kIndexBits - 1)) && grain < (int64_t{1} << (kIndexBits - 1)));
  const auto self = std::this_thread::get_id();
  // A job that starts another job on this pool would wait for itself forever.
  LUZAO_CHECK(owner_.load(std::memory_order_relaxed) != self);
  for (const auto& w : workers_) LUZAO_CHECK(w.get_id() != self);

  std::lock_guard call_lock(call_mutex_);
  owner_.store(self, std::memory_order_relaxed);
  struct Reset {
    std::atomic<std::thread::id>& owner;
    ~Reset() { owner.store(std::thread::id(), std::memory_order_relaxed); }
  } reset{owner_};
  if (n_threads_ == 1 || n <= grain) {
    thunk(ctx, 0, n, 0);
    return;
  }

  const uint64_t gen = generation_.load() + 1;
  const uint64_t tag = (gen & kTagMask) << kIndexBits;
  claim_.store(tag | kIndexMask);  // closed: stale claims fail from here on
  thunk_.store(thunk);
  ctx_.store(ctx);
  n_.store(n);
  grain_.store(grain);
  done_.store(0);
  error_ = nullptr;
  claim_.store(tag);  // open at index 0
  generation_.store(gen);
  generation_.notify_all();

  work(gen, 0);
  for (int i = 0; done_.load() < n; ++i) {  // the remaining chunks are running on workers
    if (i < kSpinIterations) {
      pause();
    } else {
      std::this_thread::yield();
    }
  }
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

}  // namespace luzao::cpu
