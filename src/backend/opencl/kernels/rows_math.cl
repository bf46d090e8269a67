// Row-wise ops: rms_norm, rope, softmax (one work-item per row, or per row x rotation pair), and
// the element-wise swiglu, add, mul, scale (one work-item per element). Formulas as the cpu
// backend: squares summed in double where available, rope angles by iterated F32 products.

__kernel void rms_norm(__global const uchar* x, ulong x_off, ulong x_stride,
                       __global const uchar* w, ulong w_off, __global uchar* out, ulong o_off,
                       ulong o_stride, int cols, float eps) {
  const int r = get_global_id(0);
  __global const float* xr = ROW_F32(x, x_off, x_stride, r);
  __global const float* wr = (__global const float*)(w + w_off);
  __global float* o = ROW_F32(out, o_off, o_stride, r);
  wide_t sum = 0;
  for (int j = 0; j < cols; ++j) sum += (wide_t)(xr[j] * xr[j]);
  const float mean = cols > 0 ? (float)(sum / (wide_t)cols) : 0.0f;
  const float inv = 1.0f / sqrt(mean + eps);
  for (int j = 0; j < cols; ++j) o[j] = (xr[j] * inv) * wr[j];
}

// One work-item per (row, pair i < rot_dim / 2); theta_i = pos * theta_scale^i by repeated
// multiplication, theta_scale = freq_base^(-2 / rot_dim) computed on the host.
__kernel void rope(__global uchar* x, ulong x_off, ulong x_stride, __global const int* positions,
                   int n_heads, int head_dim, int rot_dim, int neox, float theta_scale) {
  const int r = get_global_id(0);
  const int i = get_global_id(1);
  const int half_dim = rot_dim / 2;
  float theta = (float)positions[r];
  for (int s = 0; s < i; ++s) theta *= theta_scale;
  const float c = cos(theta), sn = sin(theta);
  __global float* row = ROW_F32(x, x_off, x_stride, r);
  for (int h = 0; h < n_heads; ++h) {
    __global float* head = row + h * head_dim;
    const int a = neox ? i : 2 * i;
    const int b = neox ? i + half_dim : 2 * i + 1;
    const float x0 = head[a], x1 = head[b];
    head[a] = x0 * c - x1 * sn;
    head[b] = x0 * sn + x1 * c;
  }
}

__kernel void softmax(__global uchar* x, ulong x_off, ulong x_stride, int cols) {
  const int r = get_global_id(0);
  __global float* row = ROW_F32(x, x_off, x_stride, r);
  if (cols == 0) return;
  float max_x = row[0];
  for (int j = 1; j < cols; ++j) max_x = fmax(max_x, row[j]);
  wide_t denom = 0;
  for (int j = 0; j < cols; ++j) {
    row[j] = exp(row[j] - max_x);
    denom += row[j];
  }
  const float inv = (float)((wide_t)1 / denom);
  for (int j = 0; j < cols; ++j) row[j] *= inv;
}

#define OP_ADD 0
#define OP_MUL 1
#define OP_SWIGLU 2
#define OP_SCALE 3

// out = a op b per element; b broadcast when b_rows == 1 (ignored for OP_SCALE).
__kernel void elementwise(int op, __global const uchar* a, ulong a_off, ulong a_stride,
                          __global const uchar* b, ulong b_off, ulong b_stride, int b_rows,
                          __global uchar* out, ulong o_off, ulong o_stride, int cols, float s) {
  const int r = get_global_id(0);
  const int j = get_global_id(1);
  if (j >= cols) return;
  const float x = ROW_F32(a, a_off, a_stride, r)[j];
  float y = 0.0f;
  if (op != OP_SCALE) y = ROW_F32(b, b_off, b_stride, b_rows == 1 ? 0 : r)[j];
  float v;
  switch (op) {
    case OP_ADD:
      v = x + y;
      break;
    case OP_MUL:
      v = x * y;
      break;
    case OP_SWIGLU:
      v = x / (1.0f + exp(-x)) * y;
      break;
    default:
      v = x * s;
      break;
  }
  ROW_F32(out, o_off, o_stride, r)[j] = v;
}
