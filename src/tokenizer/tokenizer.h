// Tokenizers read from GGUF metadata: SentencePiece-style (llama) and byte-level BPE (gpt2) with
// the pre-tokenizer named by tokenizer.ggml.pre. Immutable after construction; thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "format/gguf.h"

namespace luzao {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Builds the tokenizer that `tokenizer.ggml.model` names. Throws Error(kUnsupported) naming the
  // model or pre-tokenizer when luzao has none for it, Error(kBadFile) for inconsistent metadata.
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& file);

  // add_special: prepend BOS / append EOS as the vocabulary asks (tokenizer.ggml.add_bos_token...).
  // parse_special: text like "<|im_start|>" becomes the control token instead of plain text.
  virtual std::vector<int32_t> tokenize(std::string_view text, bool add_special,
                                        bool parse_special) const = 0;
  // The bytes a token stands for (byte tokens decoded, SPM spaces restored). Control tokens give
  // their text when `render_special`, else "".
  virtual std::string token_to_piece(int32_t id, bool render_special) const = 0;
  std::string detokenize(std::span<const int32_t> ids, bool render_special) const;

  virtual int32_t n_vocab() const = 0;
  virtual const std::string& token_text(int32_t id) const = 0;  // as stored in the vocabulary
  virtual int32_t bos() const = 0;  // -1 when the vocabulary has none
  virtual int32_t eos() const = 0;
  // End of generation: EOS, EOT and any other token the vocabulary marks as ending a turn.
  virtual bool is_end_of_generation(int32_t id) const = 0;
  virtual bool is_control(int32_t id) const = 0;
};

// Turns a stream of token pieces into valid UTF-8 text: bytes of a character split across tokens
// are held back until the character is complete. Used by `run`, `chat` and the server.
class Utf8Stream {
 public:
  // Returns the complete characters available after appending `piece`.
  std::string push(std::string_view piece);
  // Returns whatever is held back (invalid trailing bytes included) and resets.
  std::string flush();

 private:
  std::string pending_;
};

}  // namespace luzao
