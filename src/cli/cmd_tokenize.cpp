// `luzao tokenize -m MODEL -p TEXT`: prints the token ids of a text as a JSON array on one line,
// using only the tokenizer metadata of the GGUF file (vocab-only files work).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "format/gguf.h"
#include "tokenizer/tokenizer.h"

namespace luzao::cli {
namespace {

struct TokenizeOptions {
  std::string model;
  std::optional<std::string> prompt;
  std::optional<std::string> file;
  bool add_special = false;
  bool parse_special = true;
  bool show_pieces = false;
};

std::string read_text(const std::string& path) {
  if (path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kIo, "{}: cannot open the text file", path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

CommandMain setup_tokenize(CLI::App& command) {
  auto opt = std::make_shared<TokenizeOptions>();
  command.add_option("-m,--model", opt->model, "GGUF file with tokenizer metadata")->required();
  command.add_option("-p,--prompt", opt->prompt, "Text to tokenize");
  command.add_option("-f,--file", opt->file, "Read the text from a file ('-' for stdin)");
  command.add_flag("--add-special", opt->add_special,
                   "Add BOS/EOS as the vocabulary asks (tokenizer.ggml.add_bos_token...)");
  // As llama.cpp's llama-tokenize and luzao run: special-token text such as <|im_start|> becomes
  // that token unless told otherwise.
  command.add_flag("!--no-parse-special", opt->parse_special,
                   "Treat special-token text such as <|im_start|> as plain text");
  command.add_flag("--show-pieces", opt->show_pieces,
                   "Print [{\"id\": ID, \"piece\": TEXT}, ...] instead of bare ids");
  return [opt]() -> int {
    if (opt->prompt.has_value() == opt->file.has_value()) {
      fail(ErrorKind::kInvalidArgument,
           "give the text with exactly one of -p/--prompt or -f/--file");
    }
    const std::string text = opt->prompt ? *opt->prompt : read_text(*opt->file);
    const GgufFile file = GgufFile::open(opt->model);
    const auto tokenizer = Tokenizer::from_gguf(file);
    const std::vector<int32_t> ids =
        tokenizer->tokenize(text, opt->add_special, opt->parse_special);
    nlohmann::json out = nlohmann::json::array();
    for (int32_t id : ids) {
      if (opt->show_pieces) {
        out.push_back({{"id", id}, {"piece", tokenizer->token_to_piece(id, true)}});
      } else {
        out.push_back(id);
      }
    }
    // Pieces can hold part of a UTF-8 character: those bytes print as U+FFFD.
    const std::string line = out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    return 0;
  };
}

}  // namespace luzao::cli
