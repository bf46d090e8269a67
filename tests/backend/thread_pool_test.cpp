// ThreadPool: every index is visited exactly once, thread numbers are in range, errors reach the
// caller, and the pool survives many back-to-back jobs and concurrent callers.
#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/error.h"

namespace luzao {
namespace {

void expect_each_index_once(ThreadPool& pool, int64_t n, int64_t grain) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  std::atomic<bool> bad_thread{false};
  const auto body = [&](int64_t begin, int64_t end, int thread) {
    if (thread < 0 || thread >= pool.size() || begin >= end) bad_thread = true;
    for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)]++;
  };
  if (grain == 0) {
    pool.parallel_for(n, body);
  } else {
    pool.parallel_for_dynamic(n, grain, body);
  }
  EXPECT_FALSE(bad_thread);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)], 1) << "index " << i;
}

TEST(ThreadPool, VisitsEveryIndexOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {0, 1, 2, 3, 7, 64, 1001}) {
      expect_each_index_once(pool, n, 0);
      expect_each_index_once(pool, n, 1);
      expect_each_index_once(pool, n, 5);
    }
  }
}

TEST(ThreadPool, ZeroMeansHardwareConcurrency) {
  ThreadPool pool(0);
  EXPECT_GE(pool.size(), 1);
  EXPECT_EQ(static_cast<unsigned>(pool.size()), std::max(1u, std::thread::hardware_concurrency()));
}

TEST(ThreadPool, StaticSplitUsesAllThreads) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> seen(3);
  pool.parallel_for(3, [&](int64_t begin, int64_t end, int thread) {
    EXPECT_EQ(end - begin, 1);
    EXPECT_EQ(begin, thread);  // contiguous ranges in thread order
    seen[static_cast<size_t>(thread)]++;
  });
  for (auto& s : seen) EXPECT_EQ(s, 1);
}

TEST(ThreadPool, ManyBackToBackJobs) {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  for (int job = 0; job < 3000; ++job) {
    pool.parallel_for(6, [&](int64_t begin, int64_t end, int) { total += end - begin; });
  }
  EXPECT_EQ(total, 3000 * 6);
}

TEST(ThreadPool, ExceptionReachesCaller) {
  ThreadPool pool(3);
  EXPECT_THROW(pool.parallel_for(100,
                                 [&](int64_t begin, int64_t, int) {
                                   if (begin > 0) throw std::runtime_error("boom");
                                 }),
               std::runtime_error);
  // The pool is still usable afterwards.
  expect_each_index_once(pool, 50, 0);
}

TEST(ThreadPool, NestedCallIsRejected) {
  ThreadPool pool(2);
  EXPECT_THROW(
      pool.parallel_for(
          4, [&](int64_t, int64_t, int) { pool.parallel_for(2, [](int64_t, int64_t, int) {}); }),
      Error);
  expect_each_index_once(pool, 10, 0);
}

TEST(ThreadPool, ConcurrentCallersAreSerialised) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 3; ++c) {
    callers.emplace_back([&] {
      for (int job = 0; job < 2000; ++job) {
        pool.parallel_for(8, [&](int64_t begin, int64_t end, int) { total += end - begin; });
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(total, 3 * 2000 * 8);
}

}  // namespace
}  // namespace luzao
