// The reference backend: plain scalar, single-threaded implementations of every op. It is the
// specification that every other backend is tested against, so clarity beats speed here.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace luzao {

// A host-memory device named "reference". Streams run each op synchronously on the caller's
// thread. Thread-safety: separate streams may be used from separate threads.
std::unique_ptr<Device> make_reference_device();

}  // namespace luzao
