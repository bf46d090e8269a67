/* An example luzao backend plugin: a scalar host implementation of the op set, written in C
 * against include/luzao/plugin.h only. It is the template a vendor starts from (see
 * docs/backends.md): replace the host memory and loops with your driver's buffers and kernels.
 *
 * Capabilities: matmul and get_rows on F32, F16, Q8_0 and Q4_0 tables; attention over F32 and
 * F16 pools; set_rows into F32 and F16; the other ops on F32. One device. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luzao/plugin.h"

/* ---- objects ---------------------------------------------------------------------------- */

struct luzao_device {
  int32_t index;
};

struct luzao_buffer {
  unsigned char* data;
  uint64_t size;
  int borrowed; /* map_host: the memory belongs to the caller */
};

struct luzao_stream {
  luzao_device* device;
};

static luzao_status fail(luzao_error* err, luzao_status status, const char* format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(err->message, sizeof(err->message), format, args);
  va_end(args);
  return status;
}

/* ---- element types ------------------------------------------------------------------------ */

static float half_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const int exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ffu;
  float magnitude;
  if (exp == 0) {
    magnitude = ldexpf((float)mant, -24); /* zero and subnormals */
  } else if (exp == 31) {
    magnitude = mant != 0 ? NAN : INFINITY;
  } else {
    magnitude = ldexpf((float)(mant | 0x400u), exp - 25);
  }
  return sign != 0 ? -magnitude : magnitude;
}

/* Round to nearest even, as every luzao backend does. */
static uint16_t float_to_half(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);  /* NaN */
  if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* overflow: infinity */
  if (abs < 0x38800000u) {                                   /* subnormal or zero */
    if (abs < 0x33000000u) return (uint16_t)sign;
    const uint32_t shift = 126 - (abs >> 23);
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    uint32_t r = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
    return (uint16_t)(sign | r);
  }
  uint32_t r = (abs >> 13) - ((127 - 15) << 10);
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return (uint16_t)(sign | r);
}

static uint16_t load_u16(const unsigned char* p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}

/* Dequantizes n elements of one row (n a multiple of the block size for block types). GGUF
 * layouts: Q8_0 = {fp16 d; int8 q[32]}, x = d*q. Q4_0 = {fp16 d; uint8 nibbles[16]}, element j
 * is the low nibble of byte j, element j+16 the high one, x = d*(q-8). */
static void dequantize(uint32_t dtype, const unsigned char* src, float* dst, int64_t n) {
  switch (dtype) {
    case LUZAO_DTYPE_F32:
      memcpy(dst, src, (size_t)n * sizeof(float));
      break;
    case LUZAO_DTYPE_F16:
      for (int64_t j = 0; j < n; ++j) dst[j] = half_to_float(load_u16(src + 2 * j));
      break;
    case LUZAO_DTYPE_Q8_0:
      for (int64_t b = 0; b < n / 32; ++b, src += 34) {
        const float d = half_to_float(load_u16(src));
        for (int j = 0; j < 32; ++j) dst[32 * b + j] = d * (float)(int8_t)src[2 + j];
      }
      break;
    case LUZAO_DTYPE_Q4_0:
      for (int64_t b = 0; b < n / 32; ++b, src += 18) {
        const float d = half_to_float(load_u16(src));
        for (int j = 0; j < 16; ++j) {
          dst[32 * b + j] = d * (float)((src[2 + j] & 0xF) - 8);
          dst[32 * b + j + 16] = d * (float)((src[2 + j] >> 4) - 8);
        }
      }
      break;
    default:
      break; /* unreachable: luzao only passes dtypes that supports() accepted */
  }
}

/* ---- views -------------------------------------------------------------------------------- */

static unsigned char* row_ptr(const luzao_tensor* t, int64_t r) {
  return t->buffer->data + t->offset + (uint64_t)r * t->row_stride;
}

static float* row_f32(const luzao_tensor* t, int64_t r) {
  return (float*)(void*)row_ptr(t, r);
}

/* ---- device ------------------------------------------------------------------------------- */

static int32_t example_probe(void) {
  return 1; /* plain host code runs everywhere; a real plugin checks for its driver here */
}

static luzao_status example_count(int32_t* out_count, luzao_error* err) {
  (void)err;
  *out_count = 1;
  return LUZAO_STATUS_OK;
}

static luzao_status example_open(int32_t index, luzao_device** out, luzao_error* err) {
  if (index != 0) return fail(err, LUZAO_STATUS_INVALID_ARGUMENT, "no device %d", (int)index);
  luzao_device* dev = calloc(1, sizeof *dev);
  if (dev == NULL) return fail(err, LUZAO_STATUS_OUT_OF_MEMORY, "cannot allocate the device");
  dev->index = index;
  *out = dev;
  return LUZAO_STATUS_OK;
}

static void example_close(luzao_device* dev) {
  free(dev);
}

static luzao_status example_info(luzao_device* dev, luzao_device_info* out, luzao_error* err) {
  (void)dev;
  (void)err;
  snprintf(out->name, sizeof out->name, "Example scalar device");
  snprintf(out->vendor, sizeof out->vendor, "luzao example");
  snprintf(out->description, sizeof out->description,
           "scalar C host code from examples/plugin, a template for vendor backends");
  out->memory_bytes = 0; /* unknown */
  return LUZAO_STATUS_OK;
}

static int32_t example_supports(luzao_device* dev, uint32_t op, uint32_t dtype) {
  (void)dev;
  switch (op) {
    case LUZAO_OP_GET_ROWS:
    case LUZAO_OP_MATMUL:
      return dtype == LUZAO_DTYPE_F32 || dtype == LUZAO_DTYPE_F16 || dtype == LUZAO_DTYPE_Q8_0 ||
             dtype == LUZAO_DTYPE_Q4_0;
    case LUZAO_OP_ATTENTION:
    case LUZAO_OP_SET_ROWS:
      return dtype == LUZAO_DTYPE_F32 || dtype == LUZAO_DTYPE_F16;
    case LUZAO_OP_RMS_NORM:
    case LUZAO_OP_ROPE:
    case LUZAO_OP_SWIGLU:
    case LUZAO_OP_ADD:
    case LUZAO_OP_MUL:
    case LUZAO_OP_SCALE:
    case LUZAO_OP_SOFTMAX:
      return dtype == LUZAO_DTYPE_F32;
    default:
      return 0; /* ops from a newer op set */
  }
}

/* ---- buffers ------------------------------------------------------------------------------ */

static luzao_status example_alloc(luzao_device* dev, uint64_t bytes, luzao_buffer** out,
                                  luzao_error* err) {
  (void)dev;
  luzao_buffer* b = calloc(1, sizeof *b);
  if (b != NULL && bytes > 0) b->data = calloc(1, (size_t)bytes);
  if (b == NULL || (bytes > 0 && b->data == NULL)) {
    free(b);
    return fail(err, LUZAO_STATUS_OUT_OF_MEMORY, "cannot allocate %llu bytes",
                (unsigned long long)bytes);
  }
  b->size = bytes;
  *out = b;
  return LUZAO_STATUS_OK;
}

static void example_free(luzao_device* dev, luzao_buffer* buffer) {
  (void)dev;
  if (buffer == NULL) return;
  if (!buffer->borrowed) free(buffer->data);
  free(buffer);
}

static luzao_status example_map_host(luzao_device* dev, const void* data, uint64_t bytes,
                                     luzao_buffer** out, luzao_error* err) {
  (void)dev;
  luzao_buffer* b = calloc(1, sizeof *b);
  if (b == NULL) return fail(err, LUZAO_STATUS_OUT_OF_MEMORY, "cannot allocate a buffer");
  b->data = (unsigned char*)(uintptr_t)data; /* ops never write through mapped weights */
  b->size = bytes;
  b->borrowed = 1;
  *out = b;
  return LUZAO_STATUS_OK;
}

static luzao_status example_upload(luzao_device* dev, luzao_buffer* dst, uint64_t offset,
                                   const void* src, uint64_t bytes, luzao_error* err) {
  (void)dev;
  if (offset > dst->size || bytes > dst->size - offset) {
    return fail(err, LUZAO_STATUS_INVALID_ARGUMENT, "upload outside the buffer");
  }
  memcpy(dst->data + offset, src, (size_t)bytes);
  return LUZAO_STATUS_OK;
}

static luzao_status example_download(luzao_device* dev, luzao_buffer* src, uint64_t offset,
                                     void* dst, uint64_t bytes, luzao_error* err) {
  (void)dev;
  if (offset > src->size || bytes > src->size - offset) {
    return fail(err, LUZAO_STATUS_INVALID_ARGUMENT, "download outside the buffer");
  }
  memcpy(dst, src->data + offset, (size_t)bytes);
  return LUZAO_STATUS_OK;
}

static luzao_status example_copy(luzao_device* dev, luzao_buffer* src, uint64_t src_offset,
                                 luzao_buffer* dst, uint64_t dst_offset, uint64_t bytes,
                                 luzao_error* err) {
  (void)dev;
  if (src_offset > src->size || bytes > src->size - src_offset || dst_offset > dst->size ||
      bytes > dst->size - dst_offset) {
    return fail(err, LUZAO_STATUS_INVALID_ARGUMENT, "copy outside a buffer");
  }
  memmove(dst->data + dst_offset, src->data + src_offset, (size_t)bytes);
  return LUZAO_STATUS_OK;
}

/* ---- streams and ops ---------------------------------------------------------------------- */

static luzao_status example_stream_create(luzao_device* dev, luzao_stream** out, luzao_error* err) {
  luzao_stream* s = calloc(1, sizeof *s);
  if (s == NULL) return fail(err, LUZAO_STATUS_OUT_OF_MEMORY, "cannot allocate a stream");
  s->device = dev;
  *out = s;
  return LUZAO_STATUS_OK;
}

static void example_stream_destroy(luzao_stream* s) {
  free(s);
}

static luzao_status example_get_rows(luzao_stream* s, const luzao_tensor* table, const int32_t* ids,
                                     uint64_t n_ids, const luzao_tensor* out, luzao_error* err) {
  (void)s;
  (void)err;
  for (uint64_t i = 0; i < n_ids; ++i) {
    dequantize(table->dtype, row_ptr(table, ids[i]), row_f32(out, (int64_t)i), table->cols);
  }
  return LUZAO_STATUS_OK;
}

static luzao_status example_rms_norm(luzao_stream* s, const luzao_tensor* x,
                                     const luzao_tensor* weight, float eps, const luzao_tensor* out,
                                     luzao_error* err) {
  (void)s;
  (void)err;
  const float* w = row_f32(weight, 0);
  for (int64_t r = 0; r < x->rows; ++r) {
    const float* xr = row_f32(x, r);
    double sum = 0.0;
    for (int64_t j = 0; j < x->cols; ++j) sum += (double)xr[j] * xr[j];
    const double mean = x->cols > 0 ? sum / (double)x->cols : 0.0;
    const double inv = 1.0 / sqrt(mean + eps);
    float* o = row_f32(out, r);
    for (int64_t j = 0; j < x->cols; ++j) o[j] = (float)(xr[j] * inv * w[j]);
  }
  return LUZAO_STATUS_OK;
}

static luzao_status example_matmul(luzao_stream* s, const luzao_tensor* x, const luzao_tensor* w,
                                   const luzao_tensor* out, luzao_error* err) {
  (void)s;
  float* wrow = malloc((size_t)(w->cols > 0 ? w->cols : 1) * sizeof(float));
  if (wrow == NULL) return fail(err, LUZAO_STATUS_OUT_OF_MEMORY, "matmul: no scratch memory");
  for (int64_t i = 0; i < w->rows; ++i) {
    dequantize(w->dtype, row_ptr(w, i), wrow, w->cols);
    for (int64_t t = 0; t < x->rows; ++t) {
      const float* xr = row_f32(x, t);
      double sum = 0.0;
      for (int64_t j = 0; j < x->cols; ++j) sum += (double)xr[j] * wrow[j];
      row_f32(out, t)[i] = (float)sum;
    }
  }
  free(wrow);
  return LUZAO_STATUS_OK;
}

static luzao_status example_rope(luzao_stream* s, const luzao_tensor* x, const int32_t* positions,
                                 uint64_t n_positions, const luzao_rope_params* p,
                                 luzao_error* err) {
  (void)s;
  (void)err;
  const int half = p->rot_dim / 2;
  for (uint64_t t = 0; t < n_positions; ++t) {
    for (int h = 0; h < p->n_heads; ++h) {
      float* head = row_f32(x, (int64_t)t) + (int64_t)h * p->head_dim;
      for (int i = 0; i < half; ++i) {
        const double theta = positions[t] * pow((double)p->freq_base, -2.0 * i / p->rot_dim);
        float* a0 = p->neox ? &head[i] : &head[2 * i];
        float* a1 = p->neox ? &head[i + half] : &head[2 * i + 1];
        const double x0 = *a0, x1 = *a1;
        *a0 = (float)(x0 * cos(theta) - x1 * sin(theta));
        *a1 = (float)(x0 * sin(theta) + x1 * cos(theta));
      }
    }
  }
  return LUZAO_STATUS_OK;
}

static float pool_value(const luzao_tensor* pool, int64_t row, int64_t col) {
  const unsigned char* r = row_ptr(pool, row);
  if (pool->dtype == LUZAO_DTYPE_F16) return half_to_float(load_u16(r + 2 * col));
  float v;
  memcpy(&v, r + 4 * col, sizeof v);
  return v;
}

static luzao_status example_attention(luzao_stream* s, const luzao_tensor* q,
                                      const luzao_tensor* k_pool, const luzao_tensor* v_pool,
                                      const luzao_attention_params* p, const luzao_tensor* out,
                                      luzao_error* err) {
  (void)s;
  const int hd = p->head_dim;
  const int group = p->n_heads / p->n_kv_heads;
  int32_t max_pos = 0;
  for (uint64_t r = 0; r < p->n_tokens; ++r)
    max_pos = p->token_pos[r] > max_pos ? p->token_pos[r] : max_pos;
  double* scores = malloc(((size_t)max_pos + 1 + (size_t)hd) * sizeof(double));
  if (scores == NULL) return fail(err, LUZAO_STATUS_OUT_OF_MEMORY, "attention: no scratch memory");
  double* acc = scores + max_pos + 1;
  for (uint64_t r = 0; r < p->n_tokens; ++r) {
    const int32_t* pages = p->block_table + (size_t)p->token_seq[r] * (size_t)p->max_blocks;
    const int32_t pos = p->token_pos[r];
    for (int h = 0; h < p->n_heads; ++h) {
      const float* qh = row_f32(q, (int64_t)r) + (int64_t)h * hd;
      const int64_t col0 = (int64_t)(h / group) * hd;
      double max_score = -INFINITY;
      for (int32_t t = 0; t <= pos; ++t) {
        const int64_t row = (int64_t)pages[t / p->page_size] * p->page_size + t % p->page_size;
        double dot = 0.0;
        for (int j = 0; j < hd; ++j) dot += (double)qh[j] * pool_value(k_pool, row, col0 + j);
        scores[t] = dot * p->scale;
        if (scores[t] > max_score) max_score = scores[t];
      }
      double denom = 0.0;
      for (int32_t t = 0; t <= pos; ++t) {
        scores[t] = exp(scores[t] - max_score);
        denom += scores[t];
      }
      for (int j = 0; j < hd; ++j) acc[j] = 0.0;
      for (int32_t t = 0; t <= pos; ++t) {
        const int64_t row = (int64_t)pages[t / p->page_size] * p->page_size + t % p->page_size;
        for (int j = 0; j < hd; ++j) acc[j] += scores[t] * pool_value(v_pool, row, col0 + j);
      }
      float* o = row_f32(out, (int64_t)r) + (int64_t)h * hd;
      for (int j = 0; j < hd; ++j) o[j] = (float)(acc[j] / denom);
    }
  }
  free(scores);
  return LUZAO_STATUS_OK;
}

static luzao_status example_swiglu(luzao_stream* s, const luzao_tensor* gate,
                                   const luzao_tensor* up, const luzao_tensor* out,
                                   luzao_error* err) {
  (void)s;
  (void)err;
  for (int64_t r = 0; r < gate->rows; ++r) {
    const float* g = row_f32(gate, r);
    const float* u = row_f32(up, r);
    float* o = row_f32(out, r);
    for (int64_t j = 0; j < gate->cols; ++j) {
      o[j] = (float)((double)g[j] / (1.0 + exp(-(double)g[j])) * u[j]);
    }
  }
  return LUZAO_STATUS_OK;
}

static luzao_status binary(const luzao_tensor* a, const luzao_tensor* b, const luzao_tensor* out,
                           int multiply) {
  for (int64_t r = 0; r < a->rows; ++r) {
    const float* x = row_f32(a, r);
    const float* y = row_f32(b, b->rows == 1 ? 0 : r);
    float* o = row_f32(out, r);
    for (int64_t j = 0; j < a->cols; ++j) o[j] = multiply ? x[j] * y[j] : x[j] + y[j];
  }
  return LUZAO_STATUS_OK;
}

static luzao_status example_add(luzao_stream* s, const luzao_tensor* a, const luzao_tensor* b,
                                const luzao_tensor* out, luzao_error* err) {
  (void)s;
  (void)err;
  return binary(a, b, out, 0);
}

static luzao_status example_mul(luzao_stream* s, const luzao_tensor* a, const luzao_tensor* b,
                                const luzao_tensor* out, luzao_error* err) {
  (void)s;
  (void)err;
  return binary(a, b, out, 1);
}

static luzao_status example_scale(luzao_stream* s, const luzao_tensor* x, float factor,
                                  const luzao_tensor* out, luzao_error* err) {
  (void)s;
  (void)err;
  for (int64_t r = 0; r < x->rows; ++r) {
    const float* xr = row_f32(x, r);
    float* o = row_f32(out, r);
    for (int64_t j = 0; j < x->cols; ++j) o[j] = xr[j] * factor;
  }
  return LUZAO_STATUS_OK;
}

static luzao_status example_softmax(luzao_stream* s, const luzao_tensor* x, luzao_error* err) {
  (void)s;
  (void)err;
  for (int64_t r = 0; r < x->rows && x->cols > 0; ++r) {
    float* row = row_f32(x, r);
    float max_x = row[0];
    for (int64_t j = 1; j < x->cols; ++j) max_x = row[j] > max_x ? row[j] : max_x;
    double denom = 0.0;
    for (int64_t j = 0; j < x->cols; ++j) denom += exp((double)row[j] - max_x);
    for (int64_t j = 0; j < x->cols; ++j) row[j] = (float)(exp((double)row[j] - max_x) / denom);
  }
  return LUZAO_STATUS_OK;
}

static luzao_status example_set_rows(luzao_stream* s, const luzao_tensor* src,
                                     const int32_t* row_ids, uint64_t n_rows,
                                     const luzao_tensor* dst, luzao_error* err) {
  (void)s;
  (void)err;
  for (uint64_t i = 0; i < n_rows; ++i) { /* in order: with repeated ids the last row wins */
    const float* from = row_f32(src, (int64_t)i);
    unsigned char* to = row_ptr(dst, row_ids[i]);
    if (dst->dtype == LUZAO_DTYPE_F32) {
      memmove(to, from, (size_t)src->cols * sizeof(float));
    } else {
      for (int64_t j = 0; j < src->cols; ++j) {
        const uint16_t h = float_to_half(from[j]);
        to[2 * j] = (unsigned char)(h & 0xFF);
        to[2 * j + 1] = (unsigned char)(h >> 8);
      }
    }
  }
  return LUZAO_STATUS_OK;
}

static luzao_status example_synchronize(luzao_stream* s, luzao_error* err) {
  (void)s;
  (void)err;
  return LUZAO_STATUS_OK; /* every op above ran to completion before returning */
}

/* ---- the table ---------------------------------------------------------------------------- */

static const luzao_plugin kPlugin = {
    .abi_version = LUZAO_PLUGIN_ABI_VERSION,
    .op_set_version = LUZAO_PLUGIN_OP_SET_VERSION,
    .struct_size = sizeof(luzao_plugin),
    .reserved = 0,
    .name = "example",
    .description = "scalar C reference plugin (examples/plugin)",
    .device = {example_probe, example_count, example_open, example_close, example_info,
               example_supports},
    .buffer = {example_alloc, example_free, example_map_host, example_upload, example_download,
               example_copy},
    .stream = {example_stream_create, example_stream_destroy, example_get_rows, example_rms_norm,
               example_matmul, example_rope, example_attention, example_swiglu, example_add,
               example_mul, example_scale, example_softmax, example_set_rows, example_synchronize},
};

LUZAO_PLUGIN_EXPORT const luzao_plugin* luzao_plugin_entry(uint32_t host_abi_version) {
  return host_abi_version == LUZAO_PLUGIN_ABI_VERSION ? &kPlugin : NULL;
}
