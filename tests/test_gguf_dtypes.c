/*
 * test_gguf_dtypes.c - GGUF files written here from the fixture's bf16
 * weights in F32, F16, BF16 and Q8_0 load and give the logits of the HF
 * model. This checks the GGUF model loader (llama keys, q/k row permutation
 * to the interleaved RoPE layout, tied output) and every matmul dtype path.
 *
 * Tolerances relative to max|logit| of the HF run, per dtype:
 *  f32, bf16: 1e-4 - the same values (bf16 is exact in f32), only summation
 *             order and the RoPE layout differ;
 *  f16:       1e-3 - bf16 values with |x| >= 6e-5 convert to f16 exactly;
 *             smaller ones lose bits as f16 subnormals;
 *  q8_0:      6e-2 - 8-bit weights and activations, see test_model_ref.c.
 *
 * The block types of core/quant.h (q4_0 .. q6_k) are written as llama.cpp
 * writes them: a K-quant only where the row length is a multiple of 256
 * (here ffn_down, in = 1024), the others falling back like llama.cpp's
 * quantizer (q2_k, q3_k -> q4_0, q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0).
 * Their logits are compared with the same model written in f32 from the
 * same quantized-then-dequantized weights. Builds with an integer prompt
 * GEMM (AVX-512 or AVX2; lk_cpu_gemm_qdot) quantize the activations of every
 * q4_0 .. q6_k / q8_0 matmul to int8 blocks, so 6e-2 of max|logit| as q8_0
 * above (measured on an AVX2 build, 2026-12-03: 0.0060 (q3_k) .. 0.0085
 * (q5_1), q8_0 itself 0.0105); portable builds multiply f32 activations by
 * exactly the dequantized weights in prefill (only summation order
 * differs): 1e-4, except q6_k (its q8_0 fallback tensors quantize
 * activations: 6e-2).
 * Each also reports its distance to the HF logits, unchecked (4-bit weights
 * on a 15M model).
 */
#include "test.h"

#include "cpu/cpu_internal.h" /* LK_CPU_X86_512, LK_CPU_X86_256 */
#include "format/gguf.h"
#include "model/model.h"

#include <unistd.h>

/* Convert a tensor to f32 (rows, cols); the caller frees. */
static float *to_f32(const lk_tensor *t) {
    int64_t n = lk_tensor_nelements(t);
    float *x = malloc(sizeof(float) * (size_t)n);
    lk_row_to_f32(t->dtype, t->data, x, n);
    return x;
}

/* HF rotate-half rows -> llama.cpp interleaved rows, per head:
 * new[2i] = old[i], new[2i+1] = old[i + D/2] (convert_hf_to_gguf.py's permute). */
static void permute_rows(const float *src, float *dst, int n_heads, int D, int cols) {
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < D / 2; i++)
            for (int j = 0; j < 2; j++)
                memcpy(dst + ((size_t)h * D + 2 * i + j) * cols, src + ((size_t)h * D + j * D / 2 + i) * cols,
                       sizeof(float) * (size_t)cols);
}

/* The dtype llama.cpp uses for a K-quant tensor whose rows are not a
 * multiple of 256. */
static lk_dtype fallback(lk_dtype dt, int64_t cols) {
    if (cols % lk_dtype_block_elems(dt) == 0) return dt;
    switch (dt) {
    case LK_DTYPE_Q2_K: case LK_DTYPE_Q3_K: return LK_DTYPE_Q4_0;
    case LK_DTYPE_Q4_K: return LK_DTYPE_Q5_0;
    case LK_DTYPE_Q5_K: return LK_DTYPE_Q5_1;
    default: return LK_DTYPE_Q8_0;
    }
}

/* Add tensor t as dt; rt != F32: write f32 values quantized to rt (with
 * its fallback) and dequantized again (the reference for rt). */
static void add(lk_gguf_writer *w, const char *name, const lk_tensor *t, lk_dtype dt, lk_dtype rt,
                int permute_heads, int D) {
    float *x = to_f32(t);
    int64_t rows = lk_tensor_nelements(t) / t->ne[0];
    if (permute_heads) {
        float *p = malloc(sizeof(float) * (size_t)(rows * t->ne[0]));
        permute_rows(x, p, permute_heads, D, (int)t->ne[0]);
        free(x);
        x = p;
    }
    if (t->n_dims == 1) dt = rt = LK_DTYPE_F32; /* norms stay f32, as llama.cpp writes them */
    dt = fallback(dt, t->ne[0]);
    if (rt != LK_DTYPE_F32) {
        rt = fallback(rt, t->ne[0]);
        void *q = malloc(lk_dtype_row_bytes(rt, t->ne[0]));
        for (int64_t r = 0; r < rows; r++) {
            lk_row_from_f32(rt, x + r * t->ne[0], q, t->ne[0]);
            lk_row_to_f32(rt, q, x + r * t->ne[0], t->ne[0]);
        }
        free(q);
    }
    void *buf = malloc(lk_dtype_row_bytes(dt, t->ne[0]) * (size_t)rows);
    for (int64_t r = 0; r < rows; r++)
        lk_row_from_f32(dt, x + r * t->ne[0], (uint8_t *)buf + r * lk_dtype_row_bytes(dt, t->ne[0]), t->ne[0]);
    CHECK_OK(lk_gguf_writer_add_tensor(w, name, dt, t->n_dims, t->ne, buf));
    free(buf);
    free(x);
}

static void write_gguf(const loki_model *m, const lk_gguf *tok_src, lk_dtype dt, lk_dtype rt, const char *path) {
    const lk_hparams *hp = &m->hp;
    lk_gguf_writer *w = NULL;
    CHECK_OK(lk_gguf_writer_init(&w, NULL));
    lk_gguf_writer_add_str(w, "general.architecture", "llama");
    lk_gguf_writer_add_u32(w, "llama.context_length", (uint32_t)hp->n_ctx_train);
    lk_gguf_writer_add_u32(w, "llama.embedding_length", (uint32_t)hp->n_embd);
    lk_gguf_writer_add_u32(w, "llama.block_count", (uint32_t)hp->n_layer);
    lk_gguf_writer_add_u32(w, "llama.feed_forward_length", (uint32_t)hp->n_ff);
    lk_gguf_writer_add_u32(w, "llama.attention.head_count", (uint32_t)hp->n_head);
    lk_gguf_writer_add_u32(w, "llama.attention.head_count_kv", (uint32_t)hp->n_head_kv);
    lk_gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", hp->rms_eps);
    lk_gguf_writer_add_f32(w, "llama.rope.freq_base", hp->rope_theta);
    for (uint64_t i = 0; i < tok_src->n_kv; i++)
        if (!strncmp(tok_src->kv[i].key, "tokenizer.", 10)) lk_gguf_writer_copy_kv(w, &tok_src->kv[i]);
    int D = hp->head_dim;
    add(w, "token_embd.weight", &m->tok_embd, dt, rt, 0, D);
    add(w, "output_norm.weight", &m->out_norm, dt, rt, 0, D);
    char name[64];
    for (int l = 0; l < hp->n_layer; l++) {
        const lk_layer *L = &m->layers[l];
        const struct { const char *n; const lk_tensor *t; int perm; } ts[] = {
            {"attn_norm", &L->attn_norm, 0}, {"attn_q", &L->wq, hp->n_head}, {"attn_k", &L->wk, hp->n_head_kv},
            {"attn_v", &L->wv, 0}, {"attn_output", &L->wo, 0}, {"ffn_norm", &L->ffn_norm, 0},
            {"ffn_gate", &L->w_gate, 0}, {"ffn_up", &L->w_up, 0}, {"ffn_down", &L->w_down, 0}};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, ts[i].n);
            add(w, name, ts[i].t, dt, rt, ts[i].perm, D);
        }
    }
    loki_error err = {0};
    CHECKF(lk_gguf_writer_write(w, path, &err) == LOKI_OK, "%s", err.msg);
    lk_gguf_writer_free(w);
}

/* Logits (n, V) of `ids` under the model at path; caller frees. */
static float *run_logits(const char *path, const int32_t *ids, int n, int *V) {
    loki_model *m = NULL;
    loki_error err = {0};
    if (loki_model_open(path, NULL, &m, &err) != LOKI_OK) {
        CHECKF(0, "%s", err.msg);
        return NULL;
    }
    loki_model_info info;
    loki_model_get_info(m, &info);
    *V = info.n_vocab;
    loki_context_params cp = loki_context_default_params();
    cp.n_ctx = 256;
    /* an f32 cache: the default 16-bit one (bf16 without F16C) rounds each key
     * and value, which turns the summation-order noise between two weight
     * dtypes into steps of up to 2^-8 (measured 2.6e-4 of max|logit| with a
     * bf16 cache in a portable build, 2026-12-05) */
    cp.type_k = cp.type_v = LOKI_KV_F32;
    loki_context *ctx = NULL;
    CHECK_OK(loki_context_init(m, &cp, &ctx, &err));
    CHECK_OK(loki_eval(ctx, ids, n, true, &err));
    float *out = malloc(sizeof(float) * (size_t)n * info.n_vocab);
    memcpy(out, loki_get_logits(ctx, NULL), sizeof(float) * (size_t)n * info.n_vocab);
    loki_context_free(ctx);
    loki_model_close(m);
    return out;
}

int main(void) {
    char *hf = test_shared_or_skip("models/fixture-15m");
    char *q8 = test_shared_or_skip("models/fixture-15m-gguf/fixture-15m-q8_0.gguf");
    loki_model *m = NULL;
    loki_error err = {0};
    CHECKF(loki_model_open(hf, NULL, &m, &err) == LOKI_OK, "%s", err.msg);
    lk_gguf tok;
    CHECKF(lk_gguf_open(q8, &tok, &err) == LOKI_OK, "%s", err.msg);
    if (!m || g_test.failed) return test_finish();
    const char *text = " The old man looked at the sea, and the sea looked back at him.";
    int32_t ids[128];
    int n = 0;
    CHECK_OK(loki_tokenize(m, text, strlen(text), true, false, ids, 128, &n, &err));
    int V = 0;
    float *ref = run_logits(hf, ids, n, &V);
    double mr = 0;
    for (size_t i = 0; i < (size_t)n * V; i++) mr = fmax(mr, fabs(ref[i]));
    const lk_dtype dts[] = {LK_DTYPE_F32, LK_DTYPE_BF16, LK_DTYPE_F16, LK_DTYPE_Q8_0};
    const double tols[] = {1e-4, 1e-4, 1e-3, 6e-2};
    for (int k = 0; k < 4; k++) {
        char path[] = "/tmp/loki_test_dtype_XXXXXX";
        int fd = mkstemp(path);
        close(fd);
        write_gguf(m, &tok, dts[k], LK_DTYPE_F32, path);
        int V2 = 0;
        float *lg = run_logits(path, ids, n, &V2);
        if (lg && V2 == V) {
            double md = 0;
            for (size_t i = 0; i < (size_t)n * V; i++) md = fmax(md, fabs(lg[i] - ref[i]));
            printf("%s: max|d| / max|ref| = %.3g (tolerance %.0e)\n", lk_dtype_name(dts[k]), md / mr, tols[k]);
            CHECKF(md <= tols[k] * mr, "%s: %g > %g", lk_dtype_name(dts[k]), md / mr, tols[k]);
        }
        free(lg);
        unlink(path);
    }
    const lk_dtype qts[] = {LK_DTYPE_Q4_0, LK_DTYPE_Q4_1, LK_DTYPE_Q5_0, LK_DTYPE_Q5_1, LK_DTYPE_Q2_K,
                            LK_DTYPE_Q3_K, LK_DTYPE_Q4_K, LK_DTYPE_Q5_K, LK_DTYPE_Q6_K};
    for (size_t k = 0; k < LK_ARRAY_LEN(qts); k++) {
        char pq[] = "/tmp/loki_test_dtype_XXXXXX", pf[] = "/tmp/loki_test_dtype_XXXXXX";
        close(mkstemp(pq));
        close(mkstemp(pf));
        write_gguf(m, &tok, qts[k], LK_DTYPE_F32, pq);
        write_gguf(m, &tok, LK_DTYPE_F32, qts[k], pf);
        int V2 = 0, V3 = 0;
        float *lq = run_logits(pq, ids, n, &V2), *lf = run_logits(pf, ids, n, &V3);
        if (lq && lf && V2 == V && V3 == V) {
            double md = 0, mf = 0, mh = 0;
            for (size_t i = 0; i < (size_t)n * V; i++) {
                md = fmax(md, fabs(lq[i] - lf[i]));
                mf = fmax(mf, fabs(lf[i]));
                mh = fmax(mh, fabs(lq[i] - ref[i]));
            }
#if defined(LK_CPU_X86_512) || defined(LK_CPU_X86_256)
            const double tol = 6e-2;
#else
            const double tol = qts[k] == LK_DTYPE_Q6_K ? 6e-2 : 1e-4;
#endif
            printf("%s: max|d| / max|ref| = %.3g against f32 dequantized weights (tolerance %.0e); "
                   "%.3g against HF\n", lk_dtype_name(qts[k]), md / mf, tol, mh / mr);
            CHECKF(md <= tol * mf, "%s: %g > %g", lk_dtype_name(qts[k]), md / mf, tol);
        } else {
            CHECKF(0, "%s: no logits", lk_dtype_name(qts[k]));
        }
        free(lq);
        free(lf);
        unlink(pq);
        unlink(pf);
    }
    free(ref);
    lk_gguf_close(&tok);
    loki_model_close(m);
    free(hf);
    free(q8);
    return test_finish();
}
