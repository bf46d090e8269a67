// The cpu backend's WorkerPool: every index is visited exactly once with thread numbers in
// range, errors reach the caller, many back-to-back jobs and concurrent callers work, and a job
// returns only once every chunk is done.
#include "backend/cpu/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/error.h"

namespace luzao {
namespace {

using cpu::WorkerPool;

void expect_each_index_once(WorkerPool& pool, int64_t n, int64_t grain) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  std::atomic<bool> bad{false};
  const auto body = [&](int64_t begin, int64_t end, int thread) {
    if (thread < 0 || thread >= pool.size() || begin >= end) bad = true;
    for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)]++;
  };
  if (grain == 0) {
    pool.parallel_for(n, body);
  } else {
    pool.parallel_for_dynamic(n, grain, body);
  }
  EXPECT_FALSE(bad);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)], 1) << "index " << i;
}

TEST(CpuWorkerPool, VisitsEveryIndexOnce) {
  for (int threads : {1, 2, 3, 5}) {
    WorkerPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {0, 1, 2, 3, 7, 64, 1001}) {
      expect_each_index_once(pool, n, 0);
      expect_each_index_once(pool, n, 1);
      expect_each_index_once(pool, n, 5);
    }
  }
}

TEST(CpuWorkerPool, ManyBackToBackJobs) {
  WorkerPool pool(3);
  std::atomic<int64_t> total{0};
  int64_t want = 0;
  for (int job = 0; job < 20000; ++job) {
    const int64_t n = 1 + job % 13;
    want += n * (n - 1) / 2;
    pool.parallel_for_dynamic(n, 1 + job % 3, [&](int64_t begin, int64_t end, int) {
      for (int64_t i = begin; i < end; ++i) total += i;
    });
  }
  EXPECT_EQ(total.load(), want);
}

TEST(CpuWorkerPool, ConcurrentCallersAreSerialised) {
  WorkerPool pool(2);
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 3; ++c) {
    callers.emplace_back([&] {
      for (int job = 0; job < 500; ++job) {
        pool.parallel_for(100, [&](int64_t begin, int64_t end, int) { total += end - begin; });
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(total.load(), 3 * 500 * 100);
}

TEST(CpuWorkerPool, FirstErrorReachesTheCaller) {
  WorkerPool pool(2);
  EXPECT_THROW(pool.parallel_for_dynamic(64, 1,
                                         [](int64_t begin, int64_t, int) {
                                           if (begin == 17) throw std::runtime_error("chunk 17");
                                         }),
               std::runtime_error);
  expect_each_index_once(pool, 100, 3);  // still usable
}

TEST(CpuWorkerPool, NestedCallIsAnInvariantViolation) {
  WorkerPool pool(1);
  EXPECT_THROW(
      pool.parallel_for(
          4, [&](int64_t, int64_t, int) { pool.parallel_for(2, [](int64_t, int64_t, int) {}); }),
      Error);
}

// The job ends when its last chunk is done, even when that chunk is slow and on another thread.
TEST(CpuWorkerPool, ReturnsOnlyAfterEveryChunkIsDone) {
  WorkerPool pool(2);
  for (int round = 0; round < 20; ++round) {
    std::atomic<int64_t> covered{0};
    pool.parallel_for_dynamic(8, 1, [&](int64_t begin, int64_t end, int) {
      if (begin == round % 8) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      covered += end - begin;
    });
    ASSERT_EQ(covered.load(), 8) << "round " << round;
  }
}

}  // namespace
}  // namespace luzao
