// The cpu backend: multi-threaded kernels on a persistent thread pool, weights kept in their
// quantized formats (activations are converted to 8-bit blocks for integer dot products).
#pragma once

#include <memory>

#include "backend/backend.h"

namespace luzao {

// A host-memory device named "cpu" with `threads` pool threads (0 = hardware concurrency).
// Its streams share the pool: ops issued from several streams at once run one after another.
// Every op runs synchronously inside the call; synchronize() returns at once. Buffers made by
// map_host are taken as read-only for as long as they live: matrices in them are repacked for
// the matmul kernels on first use (cpu/packed.h), and the packed copies are reused.
std::unique_ptr<Device> make_cpu_device(int threads = 0);

}  // namespace luzao
