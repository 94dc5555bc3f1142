/*
 * ops.c - the elementwise ops of a Llama / Gemma block (see cpu.h): rmsnorm,
 * rope, swiglu, geglu, add_bias, get_row. Each op runs inline on the caller for small
 * inputs (decode: a pool dispatch costs more than the work) and splits rows
 * across the pool for large ones (prefill).
 */
#include "cpu/cpu_internal.h"

#include <math.h>
#include <string.h>

#if defined(LK_CPU_X86_512)
#include <immintrin.h>
#endif

/* Elements below which an op runs on the calling thread only. */
#define LK_OPS_PAR_MIN 32768

static int use_pool(const lk_cpu *c, int64_t elems) { return c->nth > 1 && elems >= LK_OPS_PAR_MIN; }

/* ------------------------------------------------------------ rmsnorm */

typedef struct norm_task {
    float *y;          /* (n, dim) */
    const float *x;    /* (n, dim) */
    const float *w;    /* (dim) */
    int n, dim;
    float eps;
    int simd;
} norm_task;

/* HF LlamaRMSNorm in float32: y = w * (x * rsqrt(mean(x^2) + eps)). */
static void norm_rows(const norm_task *t, int64_t r0, int64_t r1) {
    const int dim = t->dim;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = t->x + r * dim;
        float *y = t->y + r * dim;
        float ss;
#if defined(LK_CPU_X86_512)
        if (t->simd) {
            __m512 a = _mm512_setzero_ps();
            for (int i = 0; i < dim; i += 16) {
                __mmask16 m = dim - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (dim - i)) - 1);
                __m512 v = _mm512_maskz_loadu_ps(m, x + i);
                a = _mm512_fmadd_ps(v, v, a);
            }
            ss = _mm512_reduce_add_ps(a);
        } else
#endif
        {
            float s[4] = {0, 0, 0, 0};
            int i = 0;
            for (; i + 4 <= dim; i += 4)
                for (int j = 0; j < 4; j++) s[j] += x[i + j] * x[i + j];
            for (; i < dim; i++) s[0] += x[i] * x[i];
            ss = (s[0] + s[1]) + (s[2] + s[3]);
        }
        const float scale = 1.0f / sqrtf(ss / (float)dim + t->eps);
        for (int i = 0; i < dim; i++) y[i] = t->w[i] * (x[i] * scale); /* y may be x */
    }
}

static void norm_task_fn(void *arg, int ith, int nth) {
    const norm_task *t = arg;
    int64_t r0, r1;
    lk_split(t->n, 1, ith, nth, &r0, &r1);
    norm_rows(t, r0, r1);
}

/* Weight `w` as f32: the tensor itself when f32, else converted into wbuf. */
static const float *weight_f32(lk_cpu *c, const lk_tensor *w, int dim) {
    if (w->dtype == LK_DTYPE_F32) return w->data;
    lk_row_to_f32(w->dtype, w->data, c->wbuf, dim);
    return c->wbuf;
}

void lk_cpu_rmsnorm(lk_cpu *c, float *y, const float *x, const lk_tensor *weight, int n, int dim,
                    float eps) {
    norm_task t = {.y = y, .x = x, .w = weight_f32(c, weight, dim), .n = n, .dim = dim, .eps = eps,
                   .simd = c->kernels != LK_CPU_KERNELS_SCALAR};
    if (use_pool(c, (int64_t)n * dim) && n > 1) lk_pool_run(c->pool, norm_task_fn, &t);
    else norm_rows(&t, 0, n);
}

/* --------------------------------------------------------------- rope */

/* Inverse frequencies exactly as Hugging Face transformers computes them, in
 * float32 (so positions/angles match HF to the last bit where libm agrees):
 *   inv_freq[i] = 1 / theta ** (float(2i) / d)            (d = rope_dim)
 *   linear: inv_freq /= factor   (HF divides inv_freq, not the position)
 *   llama3: _compute_llama3_parameters (see below).
 * Public (cpu.h) so the CUDA backend uploads the very same table. */
void lk_rope_inv_freq(const lk_hparams *hp, float *f) {
    const int d = hp->rope_dim;
    for (int i = 0; i < d / 2; i++) {
        float e = (float)(2 * i) / (float)d;
        f[i] = 1.0f / powf(hp->rope_theta, e);
    }
    if (hp->rope_scaling == LK_ROPE_SCALING_LINEAR) {
        for (int i = 0; i < d / 2; i++) f[i] = f[i] / hp->rope_factor;
    } else if (hp->rope_scaling == LK_ROPE_SCALING_LLAMA3) {
        const float factor = hp->rope_factor, lo = hp->rope_low_freq_factor,
                    hi = hp->rope_high_freq_factor, old_ctx = (float)hp->rope_orig_ctx;
        const float lo_wavelen = old_ctx / lo, hi_wavelen = old_ctx / hi;
        for (int i = 0; i < d / 2; i++) {
            const float wavelen = (float)(2.0 * M_PI) / f[i];
            /* long wavelengths (low frequencies) are slowed by factor */
            float v = wavelen > lo_wavelen ? f[i] / factor : f[i];
            if (!(wavelen < hi_wavelen) && !(wavelen > lo_wavelen)) {
                /* medium: interpolate between scaled and unscaled */
                const float smooth = (old_ctx / wavelen - lo) / (hi - lo);
                v = (1.0f - smooth) * v / factor + smooth * v;
            }
            f[i] = v;
        }
    }
    if (hp->rope_freq_factors)
        for (int i = 0; i < d / 2; i++) f[i] = f[i] / hp->rope_freq_factors[i];
}

/* Recompute c->freq only when the RoPE hyperparameters change. */
static const float *rope_freqs_cached(lk_cpu *c, const lk_hparams *hp) {
    if (!c->freq_key.valid || c->freq_key.scaling != (int)hp->rope_scaling ||
        c->freq_key.rope_dim != hp->rope_dim || c->freq_key.theta != hp->rope_theta ||
        c->freq_key.factor != hp->rope_factor || c->freq_key.low != hp->rope_low_freq_factor ||
        c->freq_key.high != hp->rope_high_freq_factor || c->freq_key.orig_ctx != hp->rope_orig_ctx ||
        c->freq_key.factors != hp->rope_freq_factors) {
        lk_rope_inv_freq(hp, c->freq);
        c->freq_key.valid = 1;
        c->freq_key.scaling = (int)hp->rope_scaling;
        c->freq_key.rope_dim = hp->rope_dim;
        c->freq_key.theta = hp->rope_theta;
        c->freq_key.factor = hp->rope_factor;
        c->freq_key.low = hp->rope_low_freq_factor;
        c->freq_key.high = hp->rope_high_freq_factor;
        c->freq_key.orig_ctx = hp->rope_orig_ctx;
        c->freq_key.factors = hp->rope_freq_factors;
    }
    return c->freq;
}

typedef struct rope_task {
    lk_cpu *c;
    float *x;              /* (n, n_heads, head_dim) */
    const int32_t *pos;    /* (n) */
    const float *freq;     /* (rope_dim/2) */
    int n, n_heads, head_dim, rope_dim;
    lk_rope_style style;
} rope_task;

/* HF apply_rotary_pos_emb in float32: angle = float(pos) * inv_freq,
 * out_a = a*cos - b*sin, out_b = b*cos + a*sin for each rotated pair (a, b). */
static void rope_rows(const rope_task *t, float *cs /* (rope_dim) */, int64_t r0, int64_t r1) {
    const int half = t->rope_dim / 2, hd = t->head_dim;
    float *cosv = cs, *sinv = cs + half;
    for (int64_t r = r0; r < r1; r++) {
        const float p = (float)t->pos[r];
        for (int i = 0; i < half; i++) {
            const float a = p * t->freq[i];
            cosv[i] = cosf(a);
            sinv[i] = sinf(a);
        }
        for (int h = 0; h < t->n_heads; h++) {
            float *v = t->x + (r * t->n_heads + h) * hd;
            /* pair i is (v[ia], v[ib]): NORM interleaved, NEOX halves */
            const int step = t->style == LK_ROPE_NEOX ? 1 : 2;
            const int off = t->style == LK_ROPE_NEOX ? half : 1;
            for (int i = 0; i < half; i++) {
                float *pa = v + i * step, *pb = pa + off;
                const float a = *pa, b = *pb;
                *pa = a * cosv[i] - b * sinv[i];
                *pb = b * cosv[i] + a * sinv[i];
            }
        }
    }
}

static void rope_task_fn(void *arg, int ith, int nth) {
    const rope_task *t = arg;
    int64_t r0, r1;
    lk_split(t->n, 1, ith, nth, &r0, &r1);
    rope_rows(t, lk_cpu_thr_scratch(t->c, ith), r0, r1);
}

void lk_cpu_rope(lk_cpu *c, float *x, int n, int n_heads, const int32_t *pos, const lk_hparams *hp) {
    rope_task t = {.c = c, .x = x, .pos = pos, .freq = rope_freqs_cached(c, hp), .n = n,
                   .n_heads = n_heads, .head_dim = hp->head_dim, .rope_dim = hp->rope_dim,
                   .style = hp->rope_style};
    if (use_pool(c, (int64_t)n * n_heads * hp->head_dim) && n > 1) lk_pool_run(c->pool, rope_task_fn, &t);
    else rope_rows(&t, lk_cpu_thr_scratch(c, 0), 0, n);
}

/* ------------------------------------------------------------- swiglu */

typedef struct swiglu_task {
    float *g;          /* (n * n_ff) */
    const float *u;    /* (n * n_ff) */
    int64_t total;
    int simd;
} swiglu_task;

static void swiglu_range(const swiglu_task *t, int64_t b, int64_t e) {
#if defined(LK_CPU_X86_512)
    if (t->simd) {
        lk_swiglu_x86(t->g + b, t->u + b, e - b);
        return;
    }
#endif
    for (int64_t i = b; i < e; i++) {
        const float g = t->g[i];
        t->g[i] = g / (1.0f + expf(-g)) * t->u[i];
    }
}

static void swiglu_task_fn(void *arg, int ith, int nth) {
    const swiglu_task *t = arg;
    int64_t b, e;
    lk_split(t->total, 16, ith, nth, &b, &e);
    if (b < e) swiglu_range(t, b, e);
}

void lk_cpu_swiglu(lk_cpu *c, float *gate, const float *up, int n, int n_ff) {
    swiglu_task t = {.g = gate, .u = up, .total = (int64_t)n * n_ff,
                     .simd = c->kernels != LK_CPU_KERNELS_SCALAR};
    if (use_pool(c, t.total)) lk_pool_run(c->pool, swiglu_task_fn, &t);
    else swiglu_range(&t, 0, t.total);
}

/* -------------------------------------------------------------- geglu */

typedef struct geglu_task {
    float *g;          /* (n * n_ff) */
    const float *u;    /* (n * n_ff) */
    int64_t total;
} geglu_task;

/* transformers' gelu_pytorch_tanh (torch gelu, approximate="tanh") in float32:
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
static void geglu_range(const geglu_task *t, int64_t b, int64_t e) {
    const float k0 = 0.7978845608028654f, k1 = 0.044715f;
    for (int64_t i = b; i < e; i++) {
        const float x = t->g[i];
        t->g[i] = 0.5f * x * (1.0f + tanhf(k0 * (x + k1 * x * x * x))) * t->u[i];
    }
}

/* Pool task: thread ith of nth takes its share of the elements (multiples of 16). */
static void geglu_task_fn(void *arg, int ith, int nth) {
    const geglu_task *t = arg;
    int64_t b, e;
    lk_split(t->total, 16, ith, nth, &b, &e);
    if (b < e) geglu_range(t, b, e);
}

void lk_cpu_geglu(lk_cpu *c, float *gate, const float *up, int n, int n_ff) {
    geglu_task t = {.g = gate, .u = up, .total = (int64_t)n * n_ff};
    if (use_pool(c, t.total)) lk_pool_run(c->pool, geglu_task_fn, &t);
    else geglu_range(&t, 0, t.total);
}

/* ------------------------------------------------- add_bias, get_row */

void lk_cpu_add_bias(float *x, const lk_tensor *bias, int n, int dim) {
    if (bias->dtype == LK_DTYPE_F32) {
        const float *b = bias->data;
        for (int64_t r = 0; r < n; r++)
            for (int i = 0; i < dim; i++) x[r * dim + i] += b[i];
        return;
    }
    /* Convert in chunks of 256 (a multiple of the q8_0 block) on the stack:
     * no scratch needed, and conversion is cheap next to the adds. */
    float tmp[256];
    const size_t cb = lk_dtype_row_bytes(bias->dtype, 256);
    for (int i0 = 0; i0 < dim; i0 += 256) {
        const int m = LK_MIN(256, dim - i0);
        lk_row_to_f32(bias->dtype, (const char *)bias->data + (size_t)(i0 / 256) * cb, tmp, m);
        for (int64_t r = 0; r < n; r++)
            for (int i = 0; i < m; i++) x[r * dim + i0 + i] += tmp[i];
    }
}

void lk_cpu_get_row(float *out, const lk_tensor *table, int64_t row) {
    const int64_t dim = table->ne[0];
    const size_t rb = lk_dtype_row_bytes(table->dtype, dim);
    lk_row_to_f32(table->dtype, (const char *)table->data + (size_t)row * rb, out, dim);
}
