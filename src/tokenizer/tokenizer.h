// Tokenizers read from GGUF metadata: SentencePiece-style (llama) and byte-level BPE (gpt2) with
// the pre-tokenizer named by tokenizer.ggml.pre. Immutable after construction; thread-safe.
// The results follow llama.cpp's llama_tokenize / llama_token_to_piece id for id.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "format/gguf.h"

namespace luzao {

// Token kinds as tokenizer.ggml.token_type numbers them.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// The tokenizer part of a GGUF file's metadata (keys tokenizer.ggml.*), also the way tests and
// synthetic models build a tokenizer without a file. Optional fields absent in the file stay
// unset and get llama.cpp's defaults.
struct VocabData {
  std::string source;  // the file name, for error messages
  std::string model;   // tokenizer.ggml.model: "llama" (SPM) or "gpt2" (byte-level BPE)
  std::string pre;     // tokenizer.ggml.pre
  std::string name;    // general.name (llama.cpp keys a phi-3 special case on it)
  std::vector<std::string> tokens;
  std::vector<float> scores;        // empty, or one per token
  std::vector<int32_t> types;       // empty, or one per token (TokenType values)
  std::vector<std::string> merges;  // "left right", rank = index
  std::optional<int64_t> bos, eos, eot, eom, unk, pad, sep;
  std::optional<int64_t> fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
  std::optional<bool> add_bos, add_eos, add_space_prefix;

  // Reads the keys above. Throws Error(kBadFile) naming the file and key when tokens are missing
  // or an array has the wrong type.
  static VocabData from_gguf(const GgufFile& file);
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Builds the tokenizer that `tokenizer.ggml.model` names. Throws Error(kUnsupported) naming the
  // model or pre-tokenizer when luzao has none for it, Error(kBadFile) for inconsistent metadata.
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& file);
  static std::unique_ptr<Tokenizer> from_vocab(VocabData vocab);

  // add_special: prepend BOS / append EOS as the vocabulary asks (tokenizer.ggml.add_bos_token...).
  // parse_special: text like "<|im_start|>" becomes the control token instead of plain text.
  // User-defined tokens are always matched in the text, as llama.cpp does. SPM vocabularies with
  // add_space_prefix put a space before the text (and after every special token).
  virtual std::vector<int32_t> tokenize(std::string_view text, bool add_special,
                                        bool parse_special) const = 0;
  // The bytes a token stands for (byte tokens decoded, SPM spaces restored). Control tokens give
  // their text when `render_special`, else "". Ids out of range give "".
  virtual std::string token_to_piece(int32_t id, bool render_special) const = 0;
  // The pieces concatenated, nothing removed: for an SPM vocabulary with add_space_prefix the
  // result starts with the space that tokenize() added.
  std::string detokenize(std::span<const int32_t> ids, bool render_special) const;

  virtual int32_t n_vocab() const = 0;
  virtual const std::string& token_text(int32_t id) const = 0;  // as stored in the vocabulary
  virtual int32_t find_token(std::string_view text) const = 0;  // -1 when no token has it
  virtual int32_t bos() const = 0;                              // -1 when the vocabulary has none
  virtual int32_t eos() const = 0;
  virtual bool add_bos() const = 0;  // whether tokenize(add_special) prepends BOS
  // End of generation: EOS, EOT and any other token the vocabulary marks as ending a turn.
  virtual bool is_end_of_generation(int32_t id) const = 0;
  virtual bool is_control(int32_t id) const = 0;
};

// Turns a stream of token pieces into valid UTF-8 text: bytes of a character split across tokens
// are held back until the character is complete. Used by `run`, `chat` and the server.
class Utf8Stream {
 public:
  // Returns the complete characters available after appending `piece`. Bytes that can never
  // start or continue a character are passed through at once.
  std::string push(std::string_view piece);
  // Returns whatever is held back (invalid trailing bytes included) and resets.
  std::string flush();

 private:
  std::string pending_;
};

}  // namespace luzao
