/* luzao plugin ABI: the stable C interface through which an out-of-tree backend (a shared library
 * found at run time) becomes a luzao device. Plain C99; no C++ types or exceptions cross it.
 *
 * A plugin exports one function, luzao_plugin_entry, returning a table of function pointers in
 * three parts: device (what it is, what it supports), buffer (bytes on the device) and stream (the
 * op set, run in order). luzao validates every call before it crosses: views lie inside their
 * buffers, shapes agree, dtypes are ones supports() accepted and every index is in range. A plugin
 * may still check, and returns LUZAO_STATUS_INVALID_ARGUMENT for what it rejects.
 *
 * Versioning: LUZAO_PLUGIN_ABI_VERSION changes only when an existing field or signature changes.
 * New functions are appended to the end of luzao_plugin; struct_size tells luzao which exist.
 * LUZAO_PLUGIN_OP_SET_VERSION counts op set revisions; a plugin reports unknown ops as unsupported.
 *
 * Every slot is required. Optional features are declared through supports() or by returning
 * LUZAO_STATUS_UNSUPPORTED (map_host), never by a NULL slot. See docs/backends.md. */
#ifndef LUZAO_PLUGIN_H_
#define LUZAO_PLUGIN_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LUZAO_PLUGIN_ABI_VERSION 1u
#define LUZAO_PLUGIN_OP_SET_VERSION 1u
#define LUZAO_PLUGIN_ENTRY_SYMBOL "luzao_plugin_entry"

#if defined(_WIN32)
#define LUZAO_PLUGIN_EXPORT __declspec(dllexport)
#else
#define LUZAO_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* Status codes: every fallible function returns one. */
typedef int32_t luzao_status;
#define LUZAO_STATUS_OK 0
#define LUZAO_STATUS_INVALID_ARGUMENT 1 /* the call itself is wrong */
#define LUZAO_STATUS_UNSUPPORTED 2      /* valid, but this device cannot do it */
#define LUZAO_STATUS_OUT_OF_MEMORY 3    /* device memory exhausted */
#define LUZAO_STATUS_DEVICE_ERROR 4     /* driver or hardware failure; the device may be lost */
#define LUZAO_STATUS_INTERNAL 5         /* a bug in the plugin */

/* The op set, numbered as luzao::OpKind. */
#define LUZAO_OP_GET_ROWS 0
#define LUZAO_OP_RMS_NORM 1
#define LUZAO_OP_MATMUL 2
#define LUZAO_OP_ROPE 3
#define LUZAO_OP_ATTENTION 4
#define LUZAO_OP_SWIGLU 5
#define LUZAO_OP_ADD 6
#define LUZAO_OP_MUL 7
#define LUZAO_OP_SCALE 8
#define LUZAO_OP_SOFTMAX 9
#define LUZAO_OP_SET_ROWS 10
#define LUZAO_OP_COUNT 11

/* Element types: the GGUF/ggml type ids. Block layouts are GGUF's (see docs/backends.md). */
#define LUZAO_DTYPE_F32 0
#define LUZAO_DTYPE_F16 1
#define LUZAO_DTYPE_Q4_0 2
#define LUZAO_DTYPE_Q4_1 3
#define LUZAO_DTYPE_Q5_0 6
#define LUZAO_DTYPE_Q5_1 7
#define LUZAO_DTYPE_Q8_0 8
#define LUZAO_DTYPE_Q2_K 10
#define LUZAO_DTYPE_Q3_K 11
#define LUZAO_DTYPE_Q4_K 12
#define LUZAO_DTYPE_Q5_K 13
#define LUZAO_DTYPE_Q6_K 14
#define LUZAO_DTYPE_Q8_K 15
#define LUZAO_DTYPE_BF16 30

/* Opaque handles, defined by the plugin. */
typedef struct luzao_device luzao_device;
typedef struct luzao_buffer luzao_buffer;
typedef struct luzao_stream luzao_stream;

/* Where a failing call explains itself: the plugin writes a NUL-terminated, one-line message
 * (naming the op and argument at fault) before returning a status other than OK. Owned by the
 * caller; never NULL. */
typedef struct luzao_error {
  char message[256];
} luzao_error;

/* A 2-D row-major view: `rows` rows of `cols` elements of `dtype`, rows `row_stride` bytes apart,
 * the first at byte `offset` of `buffer`. cols is a multiple of the dtype's block size. */
typedef struct luzao_tensor {
  luzao_buffer* buffer;
  uint64_t offset;
  uint32_t dtype;
  uint32_t reserved; /* 0 */
  int64_t rows;
  int64_t cols;
  uint64_t row_stride;
} luzao_tensor;

typedef struct luzao_device_info {
  char name[64];         /* e.g. "Example scalar device" */
  char vendor[64];       /* who made the device */
  char description[256]; /* free text: driver version, compute units, ... */
  uint64_t memory_bytes; /* memory the device can allocate from; 0 when unknown */
} luzao_device_info;

/* Rotary embedding, in place on x ([rows, n_heads * head_dim]) with one position per row.
 * Pair (a, b) of head dims rotates by theta_i = pos * freq_base^(-2i/rot_dim): normal layout
 * pairs (2i, 2i+1), neox pairs (i, i + rot_dim/2), for i < rot_dim/2. */
typedef struct luzao_rope_params {
  int32_t n_heads;
  int32_t head_dim;
  int32_t rot_dim;
  float freq_base;
  int32_t neox; /* 0 or 1 */
} luzao_rope_params;

/* Causal attention over a paged KV cache with grouped-query heads (n_heads % n_kv_heads == 0).
 * Token t of sequence s lives in pool row
 *   block_table[s * max_blocks + t / page_size] * page_size + t % page_size.
 * Query row r (sequence token_seq[r], position token_pos[r]) attends to tokens 0..token_pos[r];
 * query head h reads KV head h / (n_heads / n_kv_heads); scores are scale * q.k. */
typedef struct luzao_attention_params {
  int32_t n_heads;
  int32_t n_kv_heads;
  int32_t head_dim;
  int32_t page_size;
  int32_t max_blocks;
  float scale;
  const int32_t* token_seq; /* n_tokens entries (== q rows) */
  const int32_t* token_pos; /* n_tokens entries */
  uint64_t n_tokens;
  const int32_t* block_table; /* n_block_entries = n_seqs * max_blocks entries */
  uint64_t n_block_entries;
} luzao_attention_params;

/* What the device is. Every function may be called from any thread. */
typedef struct luzao_device_api {
  /* Whether this plugin can run on this machine: > 0 yes (higher: a better match, e.g. real
   * hardware over an emulator), <= 0 no (no driver, no device). Cheap; no side effects. */
  int32_t (*probe)(void);
  luzao_status (*count)(int32_t* out_count, luzao_error* err);
  luzao_status (*open)(int32_t index, luzao_device** out, luzao_error* err);
  /* Frees the device. luzao frees every buffer and stream of it first. */
  void (*close)(luzao_device* dev);
  luzao_status (*info)(luzao_device* dev, luzao_device_info* out, luzao_error* err);
  /* Nonzero when `op` runs with weights/tables/pools/destination of `dtype` (LUZAO_DTYPE_F32 for
   * the plain ops). luzao calls an op only with dtypes accepted here. */
  int32_t (*supports)(luzao_device* dev, uint32_t op, uint32_t dtype);
} luzao_device_api;

/* Bytes owned by the device. Every function may be called from any thread; buffers are
 * independent objects. Transfers are synchronous: they return once the bytes have arrived,
 * ordered after every op already synchronized. */
typedef struct luzao_buffer_api {
  /* Zero-filled. LUZAO_STATUS_OUT_OF_MEMORY when the device cannot hold `bytes`. */
  luzao_status (*alloc)(luzao_device* dev, uint64_t bytes, luzao_buffer** out, luzao_error* err);
  void (*free)(luzao_device* dev, luzao_buffer* buffer);
  /* A buffer over host memory that outlives it (read-only weights), or
   * LUZAO_STATUS_UNSUPPORTED when the device cannot address host memory: luzao then allocs and
   * uploads. */
  luzao_status (*map_host)(luzao_device* dev, const void* data, uint64_t bytes, luzao_buffer** out,
                           luzao_error* err);
  luzao_status (*upload)(luzao_device* dev, luzao_buffer* dst, uint64_t offset, const void* src,
                         uint64_t bytes, luzao_error* err);
  luzao_status (*download)(luzao_device* dev, luzao_buffer* src, uint64_t offset, void* dst,
                           uint64_t bytes, luzao_error* err);
  /* Between two buffers of the same device; the ranges may overlap (memmove semantics). */
  luzao_status (*copy)(luzao_device* dev, luzao_buffer* src, uint64_t src_offset, luzao_buffer* dst,
                       uint64_t dst_offset, uint64_t bytes, luzao_error* err);
} luzao_buffer_api;

/* The op set, run in issue order on one stream; a stream is used by one thread at a time. Ops
 * may run asynchronously: host arrays (ids, positions, block tables) are read before the call
 * returns, tensors must stay valid until synchronize returns. Activations are F32. For the
 * element-wise ops, rms_norm and rope, `out` may be the very same view as an input. */
typedef struct luzao_stream_api {
  luzao_status (*create)(luzao_device* dev, luzao_stream** out, luzao_error* err);
  void (*destroy)(luzao_stream* stream);
  /* out[i] = dequantize(table[ids[i]]); out is [n_ids, table.cols]. */
  luzao_status (*get_rows)(luzao_stream* s, const luzao_tensor* table, const int32_t* ids,
                           uint64_t n_ids, const luzao_tensor* out, luzao_error* err);
  /* out = x / sqrt(mean(x^2) + eps) * weight, per row; weight is [1, cols]. */
  luzao_status (*rms_norm)(luzao_stream* s, const luzao_tensor* x, const luzao_tensor* weight,
                           float eps, const luzao_tensor* out, luzao_error* err);
  /* out[n, m] = x[n, k] . w[m, k]^T with w in any dtype supports() accepted (kept quantized). */
  luzao_status (*matmul)(luzao_stream* s, const luzao_tensor* x, const luzao_tensor* w,
                         const luzao_tensor* out, luzao_error* err);
  luzao_status (*rope)(luzao_stream* s, const luzao_tensor* x, const int32_t* positions,
                       uint64_t n_positions, const luzao_rope_params* p, luzao_error* err);
  /* q and out are [rows, n_heads * head_dim]; pools are [pages * page_size, n_kv * head_dim]
   * in F32 or F16. */
  luzao_status (*attention)(luzao_stream* s, const luzao_tensor* q, const luzao_tensor* k_pool,
                            const luzao_tensor* v_pool, const luzao_attention_params* p,
                            const luzao_tensor* out, luzao_error* err);
  /* out = silu(gate) * up. */
  luzao_status (*swiglu)(luzao_stream* s, const luzao_tensor* gate, const luzao_tensor* up,
                         const luzao_tensor* out, luzao_error* err);
  /* out = a + b and out = a * b; b has a's rows or one row (broadcast). */
  luzao_status (*add)(luzao_stream* s, const luzao_tensor* a, const luzao_tensor* b,
                      const luzao_tensor* out, luzao_error* err);
  luzao_status (*mul)(luzao_stream* s, const luzao_tensor* a, const luzao_tensor* b,
                      const luzao_tensor* out, luzao_error* err);
  luzao_status (*scale)(luzao_stream* s, const luzao_tensor* x, float factor,
                        const luzao_tensor* out, luzao_error* err);
  /* Row-wise softmax in place. */
  luzao_status (*softmax)(luzao_stream* s, const luzao_tensor* x, luzao_error* err);
  /* dst[row_ids[i]] = convert(src[i]) to dst's dtype (round to nearest even for F16/BF16, the
   * GGUF quantizers for block types); with repeated ids the last source row wins. */
  luzao_status (*set_rows)(luzao_stream* s, const luzao_tensor* src, const int32_t* row_ids,
                           uint64_t n_rows, const luzao_tensor* dst, luzao_error* err);
  /* Returns once every op issued on the stream so far has finished (or failed). */
  luzao_status (*synchronize)(luzao_stream* s, luzao_error* err);
} luzao_stream_api;

typedef struct luzao_plugin {
  uint32_t abi_version;    /* LUZAO_PLUGIN_ABI_VERSION the plugin was built against */
  uint32_t op_set_version; /* LUZAO_PLUGIN_OP_SET_VERSION the plugin was built against */
  uint32_t struct_size;    /* sizeof(luzao_plugin) as the plugin was built */
  uint32_t reserved;       /* 0 */
  /* Device prefix: 1-31 characters of [a-z0-9_], not one of luzao's own backends (cpu,
   * reference, opencl, cuda). Device N of the plugin is "<name>:N". */
  const char* name;
  const char* description; /* one line */
  luzao_device_api device;
  luzao_buffer_api buffer;
  luzao_stream_api stream;
} luzao_plugin;

/* The one exported symbol. `host_abi_version` is the LUZAO_PLUGIN_ABI_VERSION luzao was built
 * with; return NULL when this plugin cannot serve it. The table must stay valid until the
 * library is unloaded. */
typedef const luzao_plugin* (*luzao_plugin_entry_fn)(uint32_t host_abi_version);
LUZAO_PLUGIN_EXPORT const luzao_plugin* luzao_plugin_entry(uint32_t host_abi_version);

#ifdef __cplusplus
}
#endif

#endif /* LUZAO_PLUGIN_H_ */
