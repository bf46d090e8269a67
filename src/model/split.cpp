// Dividing a model's layers into contiguous ranges, one per device of a `--split`.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "model/model.h"

namespace luzao {

std::vector<int32_t> split_layer_counts(int32_t n_layer, std::span<const double> weights) {
  const auto parts = static_cast<int32_t>(weights.size());
  if (parts == 0) fail(ErrorKind::kInvalidArgument, "a split needs at least one device");
  if (parts > n_layer) {
    fail(ErrorKind::kInvalidArgument,
         "cannot split {} layers over {} devices: every device needs at least one layer", n_layer,
         parts);
  }
  double total = 0;
  for (double w : weights) {
    if (!(w > 0) || !std::isfinite(w)) {
      fail(ErrorKind::kInvalidArgument, "split ratio {} is not a positive number", w);
    }
    total += w;
  }
  // Boundary i sits at the rounded cumulative share, clamped so that every part before and after
  // it still gets at least one layer.
  std::vector<int32_t> counts;
  double cumulative = 0;
  int32_t previous = 0;
  for (int32_t i = 1; i <= parts; ++i) {
    cumulative += weights[static_cast<size_t>(i - 1)];
    int32_t boundary = n_layer;
    if (i < parts) {
      boundary = static_cast<int32_t>(std::llround(n_layer * cumulative / total));
      boundary = std::max(boundary, previous + 1);
      boundary = std::min(boundary, n_layer - (parts - i));
    }
    counts.push_back(boundary - previous);
    previous = boundary;
  }
  return counts;
}

}  // namespace luzao
