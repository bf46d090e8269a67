/* A fault-injection luzao plugin: device "faulty:N" runs every op through another plugin (by
 * default the example plugin, examples/plugin) and fails or hangs on command, so that failover
 * can be tested in CI. Written in C against include/luzao/plugin.h only.
 *
 * Environment:
 *   LUZAO_FAULT_CONTROL  a control file read before every op; its first word says what to do:
 *                          "ok" (or no file): run the op;
 *                          "fail": return LUZAO_STATUS_DEVICE_ERROR (the device is lost);
 *                          "hang": block until the word changes, then act on the new one.
 *                        Write the file atomically (write a temporary file, rename it over).
 *   LUZAO_FAULT_INNER    the plugin library doing the math (default: libluzao-example.so beside
 *                        this library, or in ../plugin/ as in luzao's build tree).
 *   LUZAO_FAULT_VENDOR   the vendor the device reports (default "luzao-fault").
 *   LUZAO_FAULT_DELAY_MS milliseconds added to every synchronize (a slower device; default 0).
 * Buffer allocation and uploads of weights are never faulted (the model always loads); ops,
 * synchronize, upload and download are. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "luzao/plugin.h"

/* The inner plugin, loaded once by luzao_plugin_entry (luzao calls it before anything else). */
static const luzao_plugin* g_inner = NULL;
static char g_inner_error[256] = "not loaded";

static luzao_status fail_with(luzao_error* err, luzao_status status, const char* format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(err->message, sizeof(err->message), format, args);
  va_end(args);
  return status;
}

/* ---- control ------------------------------------------------------------------------------ */

enum mode { MODE_OK, MODE_FAIL, MODE_HANG };

static enum mode read_mode(void) {
  const char* path = getenv("LUZAO_FAULT_CONTROL");
  if (path == NULL || path[0] == '\0') return MODE_OK;
  FILE* f = fopen(path, "r");
  if (f == NULL) return MODE_OK;
  char word[16] = {0};
  const int got = fscanf(f, "%15s", word);
  fclose(f);
  if (got != 1) return MODE_OK;
  if (strcmp(word, "fail") == 0) return MODE_FAIL;
  if (strcmp(word, "hang") == 0) return MODE_HANG;
  return MODE_OK;
}

/* OK to run `what`, or DEVICE_ERROR; blocks while the control file says "hang". */
static luzao_status gate(const char* what, luzao_error* err) {
  enum mode m = read_mode();
  while (m == MODE_HANG) {
    const struct timespec pause = {0, 10 * 1000 * 1000};
    nanosleep(&pause, NULL);
    m = read_mode();
  }
  if (m == MODE_FAIL) {
    return fail_with(err, LUZAO_STATUS_DEVICE_ERROR, "faulty: %s: injected device failure (%s)",
                     what, getenv("LUZAO_FAULT_CONTROL"));
  }
  return LUZAO_STATUS_OK;
}

#define GATE(what)                                          \
  do {                                                      \
    const luzao_status gate_status = gate(what, err);       \
    if (gate_status != LUZAO_STATUS_OK) return gate_status; \
  } while (0)

/* ---- loading the inner plugin ------------------------------------------------------------- */

static const luzao_plugin* try_load(const char* path) {
  void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) {
    snprintf(g_inner_error, sizeof g_inner_error, "%s", dlerror());
    return NULL;
  }
  luzao_plugin_entry_fn entry = NULL;
  void* symbol = dlsym(handle, LUZAO_PLUGIN_ENTRY_SYMBOL);
  memcpy(&entry, &symbol, sizeof entry);
  const luzao_plugin* p = entry != NULL ? entry(LUZAO_PLUGIN_ABI_VERSION) : NULL;
  if (p == NULL || p->abi_version != LUZAO_PLUGIN_ABI_VERSION) {
    snprintf(g_inner_error, sizeof g_inner_error, "%s: not a luzao plugin of ABI version %u", path,
             (unsigned)LUZAO_PLUGIN_ABI_VERSION);
    dlclose(handle);
    return NULL;
  }
  return p; /* kept loaded for the life of the process */
}

static void load_inner(void) {
  const char* env = getenv("LUZAO_FAULT_INNER");
  if (env != NULL && env[0] != '\0') {
    g_inner = try_load(env);
    return;
  }
  Dl_info self;
  if (dladdr((void*)&gate, &self) == 0 || self.dli_fname == NULL) return;
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", self.dli_fname);
  char* slash = strrchr(dir, '/');
  if (slash == NULL) return;
  *slash = '\0';
  const char* candidates[] = {"libluzao-example.so", "../plugin/libluzao-example.so"};
  for (size_t i = 0; i < sizeof candidates / sizeof candidates[0] && g_inner == NULL; ++i) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, candidates[i]);
    g_inner = try_load(path);
  }
}

/* ---- device: forwarded, with our own name and vendor -------------------------------------- */

static int32_t faulty_probe(void) {
  return g_inner != NULL ? g_inner->device.probe() : 0;
}

static luzao_status faulty_count(int32_t* out_count, luzao_error* err) {
  if (g_inner == NULL) {
    *out_count = 0;
    return fail_with(err, LUZAO_STATUS_UNSUPPORTED, "faulty: no inner plugin: %s", g_inner_error);
  }
  return g_inner->device.count(out_count, err);
}

static luzao_status faulty_open(int32_t index, luzao_device** out, luzao_error* err) {
  if (g_inner == NULL) return faulty_count(&index, err);
  return g_inner->device.open(index, out, err);
}

static void faulty_close(luzao_device* dev) {
  g_inner->device.close(dev);
}

static luzao_status faulty_info(luzao_device* dev, luzao_device_info* out, luzao_error* err) {
  luzao_device_info inner;
  memset(&inner, 0, sizeof inner);
  const luzao_status s = g_inner->device.info(dev, &inner, err);
  if (s != LUZAO_STATUS_OK) return s;
  const char* vendor = getenv("LUZAO_FAULT_VENDOR");
  snprintf(out->name, sizeof out->name, "Fault-injection device");
  snprintf(out->vendor, sizeof out->vendor, "%s",
           vendor != NULL && vendor[0] != '\0' ? vendor : "luzao-fault");
  snprintf(out->description, sizeof out->description,
           "fails or hangs on command (LUZAO_FAULT_CONTROL); math by: %.180s", inner.name);
  out->memory_bytes = inner.memory_bytes;
  return LUZAO_STATUS_OK;
}

static int32_t faulty_supports(luzao_device* dev, uint32_t op, uint32_t dtype) {
  return g_inner->device.supports(dev, op, dtype);
}

/* ---- buffers ------------------------------------------------------------------------------ */

static luzao_status faulty_alloc(luzao_device* dev, uint64_t bytes, luzao_buffer** out,
                                 luzao_error* err) {
  return g_inner->buffer.alloc(dev, bytes, out, err);
}

static void faulty_free(luzao_device* dev, luzao_buffer* buffer) {
  g_inner->buffer.free(dev, buffer);
}

static luzao_status faulty_map_host(luzao_device* dev, const void* data, uint64_t bytes,
                                    luzao_buffer** out, luzao_error* err) {
  return g_inner->buffer.map_host(dev, data, bytes, out, err);
}

static luzao_status faulty_upload(luzao_device* dev, luzao_buffer* dst, uint64_t offset,
                                  const void* src, uint64_t bytes, luzao_error* err) {
  GATE("upload");
  return g_inner->buffer.upload(dev, dst, offset, src, bytes, err);
}

static luzao_status faulty_download(luzao_device* dev, luzao_buffer* src, uint64_t offset,
                                    void* dst, uint64_t bytes, luzao_error* err) {
  GATE("download");
  return g_inner->buffer.download(dev, src, offset, dst, bytes, err);
}

static luzao_status faulty_copy(luzao_device* dev, luzao_buffer* src, uint64_t src_offset,
                                luzao_buffer* dst, uint64_t dst_offset, uint64_t bytes,
                                luzao_error* err) {
  GATE("copy");
  return g_inner->buffer.copy(dev, src, src_offset, dst, dst_offset, bytes, err);
}

/* ---- streams and ops ---------------------------------------------------------------------- */

static luzao_status faulty_stream_create(luzao_device* dev, luzao_stream** out, luzao_error* err) {
  return g_inner->stream.create(dev, out, err);
}

static void faulty_stream_destroy(luzao_stream* s) {
  g_inner->stream.destroy(s);
}

static luzao_status faulty_get_rows(luzao_stream* s, const luzao_tensor* table, const int32_t* ids,
                                    uint64_t n_ids, const luzao_tensor* out, luzao_error* err) {
  GATE("get_rows");
  return g_inner->stream.get_rows(s, table, ids, n_ids, out, err);
}

static luzao_status faulty_rms_norm(luzao_stream* s, const luzao_tensor* x,
                                    const luzao_tensor* weight, float eps, const luzao_tensor* out,
                                    luzao_error* err) {
  GATE("rms_norm");
  return g_inner->stream.rms_norm(s, x, weight, eps, out, err);
}

static luzao_status faulty_matmul(luzao_stream* s, const luzao_tensor* x, const luzao_tensor* w,
                                  const luzao_tensor* out, luzao_error* err) {
  GATE("matmul");
  return g_inner->stream.matmul(s, x, w, out, err);
}

static luzao_status faulty_rope(luzao_stream* s, const luzao_tensor* x, const int32_t* positions,
                                uint64_t n_positions, const luzao_rope_params* p,
                                luzao_error* err) {
  GATE("rope");
  return g_inner->stream.rope(s, x, positions, n_positions, p, err);
}

static luzao_status faulty_attention(luzao_stream* s, const luzao_tensor* q,
                                     const luzao_tensor* k_pool, const luzao_tensor* v_pool,
                                     const luzao_attention_params* p, const luzao_tensor* out,
                                     luzao_error* err) {
  GATE("attention");
  return g_inner->stream.attention(s, q, k_pool, v_pool, p, out, err);
}

static luzao_status faulty_swiglu(luzao_stream* s, const luzao_tensor* gate_in,
                                  const luzao_tensor* up, const luzao_tensor* out,
                                  luzao_error* err) {
  GATE("swiglu");
  return g_inner->stream.swiglu(s, gate_in, up, out, err);
}

static luzao_status faulty_add(luzao_stream* s, const luzao_tensor* a, const luzao_tensor* b,
                               const luzao_tensor* out, luzao_error* err) {
  GATE("add");
  return g_inner->stream.add(s, a, b, out, err);
}

static luzao_status faulty_mul(luzao_stream* s, const luzao_tensor* a, const luzao_tensor* b,
                               const luzao_tensor* out, luzao_error* err) {
  GATE("mul");
  return g_inner->stream.mul(s, a, b, out, err);
}

static luzao_status faulty_scale(luzao_stream* s, const luzao_tensor* x, float factor,
                                 const luzao_tensor* out, luzao_error* err) {
  GATE("scale");
  return g_inner->stream.scale(s, x, factor, out, err);
}

static luzao_status faulty_softmax(luzao_stream* s, const luzao_tensor* x, luzao_error* err) {
  GATE("softmax");
  return g_inner->stream.softmax(s, x, err);
}

static luzao_status faulty_set_rows(luzao_stream* s, const luzao_tensor* src,
                                    const int32_t* row_ids, uint64_t n_rows,
                                    const luzao_tensor* dst, luzao_error* err) {
  GATE("set_rows");
  return g_inner->stream.set_rows(s, src, row_ids, n_rows, dst, err);
}

static luzao_status faulty_synchronize(luzao_stream* s, luzao_error* err) {
  GATE("synchronize");
  const char* delay = getenv("LUZAO_FAULT_DELAY_MS");
  const long ms = delay != NULL ? strtol(delay, NULL, 10) : 0;
  if (ms > 0) {
    const struct timespec pause = {ms / 1000, (ms % 1000) * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  return g_inner->stream.synchronize(s, err);
}

/* ---- the table ---------------------------------------------------------------------------- */

static const luzao_plugin kPlugin = {
    .abi_version = LUZAO_PLUGIN_ABI_VERSION,
    .op_set_version = LUZAO_PLUGIN_OP_SET_VERSION,
    .struct_size = sizeof(luzao_plugin),
    .reserved = 0,
    .name = "faulty",
    .description = "fault injection over another plugin (examples/fault_plugin)",
    .device = {faulty_probe, faulty_count, faulty_open, faulty_close, faulty_info, faulty_supports},
    .buffer = {faulty_alloc, faulty_free, faulty_map_host, faulty_upload, faulty_download,
               faulty_copy},
    .stream = {faulty_stream_create, faulty_stream_destroy, faulty_get_rows, faulty_rms_norm,
               faulty_matmul, faulty_rope, faulty_attention, faulty_swiglu, faulty_add, faulty_mul,
               faulty_scale, faulty_softmax, faulty_set_rows, faulty_synchronize},
};

LUZAO_PLUGIN_EXPORT const luzao_plugin* luzao_plugin_entry(uint32_t host_abi_version) {
  if (host_abi_version != LUZAO_PLUGIN_ABI_VERSION) return NULL;
  if (g_inner == NULL) load_inner();
  return &kPlugin;
}
