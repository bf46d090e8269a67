// `luzao quantize IN.gguf OUT.gguf TYPE`: requantizes a GGUF model with llama.cpp's per-tensor
// choices (cli/quantize_plan.h), optional importance matrix and overrides, on all cores.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/quantize_imatrix.h"
#include "cli/quantize_plan.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "format/gguf.h"

namespace luzao::cli {
namespace {

// One line on a terminal (redrawn), one line per tensor otherwise.
class Progress {
 public:
  explicit Progress(size_t total) : total_(total), tty_(isatty(STDERR_FILENO) != 0) {}
  void step(size_t done, const TensorPlan& p) {
    if (tty_) {
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(kWidth * done / std::max<size_t>(total_, 1));
      fmt::print(stderr, "\r[{}{}] {:3}% {}/{} {:<40.40}",
                 std::string(static_cast<size_t>(filled), '='),
                 std::string(static_cast<size_t>(kWidth - filled), ' '),
                 100 * done / std::max<size_t>(total_, 1), done, total_, p.name);
      if (done == total_) fmt::print(stderr, "\n");
    } else {
      fmt::print(stderr, "[{:4}/{:4}] {:<32} {:>6} -> {:<6}{}\n", done, total_, p.name,
                 dtype_name(p.from), dtype_name(p.to), p.note.empty() ? "" : "  (" + p.note + ")");
    }
    std::fflush(stderr);
  }

 private:
  size_t total_;
  bool tty_;
};

std::string shape_text(const std::vector<uint64_t>& shape) {
  std::string s;
  for (uint64_t d : shape) s += (s.empty() ? "" : " x ") + std::to_string(d);
  return s;
}

// Checks that the imatrix was made for this model: at least one entry names a tensor that will be
// quantized with importance, and every such entry has the tensor's row length.
size_t check_imatrix(const Imatrix& m, const std::vector<TensorPlan>& plans, const std::string& in,
                     const std::string& path) {
  size_t used = 0;
  for (const TensorPlan& p : plans) {
    const auto it = m.entries().find(p.name);
    if (it == m.entries().end()) continue;
    if (it->second.sum2.size() != p.shape[0]) {
      fail(
          ErrorKind::kInvalidArgument,
          "{}: entry {} has {} columns but tensor {} in {} has rows of {} (an imatrix from another "
          "model?)",
          path, p.name, it->second.sum2.size(), p.name, in, p.shape[0]);
    }
    if (p.convert && uses_importance(p.to)) ++used;
  }
  if (used == 0) {
    fail(ErrorKind::kInvalidArgument,
         "{}: none of its {} entries names a tensor of {} that is quantized (an imatrix from "
         "another "
         "model?)",
         path, m.entries().size(), in);
  }
  return used;
}

// Dequantizes (when needed) and quantizes one tensor, rows spread over the pool.
std::vector<std::byte> convert_tensor(const GgufFile& file, const TensorPlan& p,
                                      const Imatrix* imatrix, ThreadPool& pool) {
  const GgufTensorInfo& info = *file.find_tensor(p.name);
  const std::span<const std::byte> src = file.tensor_data(info);
  if (!p.convert) return {src.begin(), src.end()};
  const auto n_per_row = static_cast<int64_t>(p.shape[0]);
  const auto n_rows = static_cast<int64_t>(info.elements() / p.shape[0]);
  const uint64_t in_row = *row_bytes(p.from, p.shape[0]);
  const uint64_t out_row = *row_bytes(p.to, p.shape[0]);
  std::vector<std::byte> out(static_cast<size_t>(out_row * static_cast<uint64_t>(n_rows)));
  std::vector<float> importance;
  if (imatrix != nullptr && uses_importance(p.to)) importance = imatrix->importance(p.name);
  const int64_t grain = std::max<int64_t>(1, 16384 / n_per_row);
  pool.parallel_for_dynamic(n_rows, grain, [&](int64_t begin, int64_t end, int) {
    std::vector<float> rows(static_cast<size_t>((end - begin) * n_per_row));
    for (int64_t r = begin; r < end; ++r) {
      dequantize_row(p.from, src.data() + static_cast<uint64_t>(r) * in_row,
                     rows.data() + (r - begin) * n_per_row, n_per_row);
    }
    quantize_rows(p.to, rows.data(), out.data() + static_cast<uint64_t>(begin) * out_row,
                  end - begin, n_per_row, importance);
  });
  return out;
}

}  // namespace

CommandMain setup_quantize(CLI::App& cmd) {
  struct Args {
    std::string in;
    std::string out;
    std::string type;
    std::string imatrix;
    std::vector<std::string> overrides;
    int threads = 0;
    bool dry_run = false;
  };
  auto a = std::make_shared<Args>();
  std::string types;
  for (const QuantScheme& s : quant_schemes()) types += fmt::format("\n  {:<7} {}", s.name, s.help);
  cmd.add_option("input", a->in, "Source GGUF (any type luzao can dequantize)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd.add_option("output", a->out, "Output GGUF (written to OUTPUT.tmp, renamed when complete)")
      ->required();
  cmd.add_option("type", a->type, "Target type:" + types)->required();
  cmd.add_option("--imatrix", a->imatrix, "Importance matrix from `luzao imatrix` or llama-imatrix")
      ->check(CLI::ExistingFile);
  cmd.add_option("--override", a->overrides,
                 "REGEX=TYPE: tensors whose name matches get TYPE (repeatable)");
  cmd.add_option("-t,--threads", a->threads, "Worker threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_flag("--dry-run", a->dry_run, "Print the per-tensor plan and write nothing");
  return [a]() -> int {
    const auto t0 = std::chrono::steady_clock::now();
    const QuantScheme& scheme = find_quant_scheme(a->type);
    std::vector<TensorOverride> overrides;
    for (const std::string& o : a->overrides) overrides.push_back(parse_override(o));
    const GgufFile file = GgufFile::open(a->in);
    std::unique_ptr<Imatrix> imatrix;
    if (!a->imatrix.empty()) imatrix = std::make_unique<Imatrix>(Imatrix::load(a->imatrix));
    const std::vector<TensorPlan> plans =
        plan_quantization(file, scheme, overrides, imatrix != nullptr);
    size_t with_importance = 0;
    if (imatrix) with_importance = check_imatrix(*imatrix, plans, a->in, a->imatrix);
    if (a->dry_run) {
      for (const TensorPlan& p : plans) {
        fmt::print("{}\t{}\t{}\t{}\t{}\n", p.name, shape_text(p.shape), dtype_name(p.from),
                   dtype_name(p.to), p.note);
      }
      return 0;
    }
    if (std::filesystem::exists(a->out) && std::filesystem::equivalent(a->in, a->out)) {
      fail(ErrorKind::kInvalidArgument, "{}: the output would overwrite the input", a->out);
    }

    GgufWriter writer;
    for (const GgufKeyValue& kv : file.metadata()) {
      if (kv.key == "general.alignment") continue;
      writer.set(kv.key, kv.value);
    }
    writer.set_alignment(static_cast<uint32_t>(file.alignment()));
    writer.set_uint32("general.file_type", scheme.file_type);
    writer.set_uint32("general.quantization_version", 2);
    if (imatrix) {
      writer.set_string("quantize.imatrix.file", a->imatrix);
      if (!imatrix->datasets.empty())
        writer.set_string("quantize.imatrix.dataset", imatrix->datasets[0]);
      writer.set_int32("quantize.imatrix.entries_count",
                       static_cast<int32_t>(imatrix->entries().size()));
      writer.set_int32("quantize.imatrix.chunks_count", static_cast<int32_t>(imatrix->chunk_count));
    }
    ThreadPool pool(a->threads);
    Progress progress(plans.size());
    uint64_t in_bytes = 0;
    uint64_t out_bytes = 0;
    uint64_t elements = 0;
    for (size_t i = 0; i < plans.size(); ++i) {
      const TensorPlan& p = plans[i];
      std::vector<std::byte> data = convert_tensor(file, p, imatrix.get(), pool);
      in_bytes += file.find_tensor(p.name)->bytes;
      out_bytes += data.size();
      elements += file.find_tensor(p.name)->elements();
      writer.add_tensor(p.name, p.to, p.shape, data);
      progress.step(i + 1, p);
    }
    const std::filesystem::path tmp = a->out + ".tmp";
    try {
      writer.write(tmp);
      std::filesystem::rename(tmp, a->out);
    } catch (...) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      throw;
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print(
        stderr, "{}: {} tensors, {:.2f} MiB -> {:.2f} MiB ({:.2f} bits per weight){}, {:.2f} s\n",
        a->out, plans.size(), in_bytes / 1048576.0, out_bytes / 1048576.0,
        elements > 0 ? 8.0 * static_cast<double>(out_bytes) / static_cast<double>(elements) : 0.0,
        imatrix ? fmt::format(", imatrix on {} tensors", with_importance) : "", seconds);
    return 0;
  };
}

}  // namespace luzao::cli
