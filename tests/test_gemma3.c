/*
 * test_gemma3.c - the Gemma 3 block on a tiny random model built here,
 * against a straightforward double-precision reference written from
 * transformers' modeling_gemma3.py (Gemma3ForCausalLM):
 *
 *   x = embed * sqrt(E); per layer (local unless (il+1) % 6 == 0):
 *     h = rms(x)*(1+w) ; q,k,v = h W ; q,k = rms per head * (1+w) (QK-norm)
 *     rope (rotate-half) with base 100 on local layers, 1e6 on global ones
 *     softmax(q k * query_pre_attn_scalar^-1/2) over keys j <= i, and
 *     i - j < window on local layers ; a = out Wo ; x += rms(a)*(1+w)
 *     h = rms(x)*(1+w) ; f = (gelu_tanh(h Wg) * h Wu) Wd ; x += rms(f)*(1+w)
 *   logits = rms(x)*(1+w) embᵀ (tied)
 *
 * The same random weights are written as a Hugging Face directory
 * (config.json gemma3_text + F32 safetensors, norms as HF stores them) and
 * as a GGUF file the way llama.cpp's converter writes Gemma 3 (norms with
 * the 1 added, only `sliding_window` among the Gemma keys, so the query
 * scale is the default 1/sqrt(head_dim)). Both are run in prompt chunks and
 * token by token and compared with the reference at every position; then
 * Loki attention must leave the local layers dense, a PCA file must record
 * which layers Loki uses; then bad configs.
 *
 * Tolerance: float32 against float64 over 7 layers of a 64-wide model:
 * |Δlogit| <= 1e-5 * max|logit| (measured 1.2e-7 .. 2.2e-7 on 2026-12-02; printed).
 */
#include "test.h"

#include "calib/analyze.h"
#include "calib/pca.h"
#include "engine/engine.h"
#include "format/gguf.h"
#include "format/hf_config.h"
#include "loki.h"

#include <sys/stat.h>
#include <unistd.h>

enum { V = 320, E = 64, H = 4, HKV = 2, D = 32, F = 128, NL = 7, WIN = 5, NT = 24 };
#define THETA_GLOBAL 1000000.0
#define THETA_LOCAL 100.0
#define QPAS 24.0 /* query_pre_attn_scalar in the HF config (head_dim 32 in the GGUF) */
#define EPS 1e-6
#define TOL 1e-5

/* Weights in Hugging Face's convention: norm weights w, used as (1 + w). */
typedef struct layer_w {
    float attn_norm[E], q_norm[D], k_norm[D], post_attn[E], ffn_norm[E], post_ffn[E];
    float wq[H * D * E], wk[HKV * D * E], wv[HKV * D * E], wo[E * H * D];
    float wg[F * E], wu[F * E], wd[E * F];
} layer_w;

typedef struct model_w {
    float emb[V * E], out_norm[E];
    layer_w L[NL];
} model_w;

/* ------------------------------------------------------------ reference */

static void ref_rms(double *x, int n, const float *w) { /* x (n) *= rsqrt(mean x^2 + eps) * (1 + w) */
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double s = 1.0 / sqrt(ss / n + EPS);
    for (int i = 0; i < n; i++) x[i] = x[i] * s * (1.0 + (double)w[i]);
}

static void ref_matvec(double *y, const float *W, const double *x, int out, int in) {
    for (int o = 0; o < out; o++) {
        double s = 0;
        for (int i = 0; i < in; i++) s += (double)W[(size_t)o * in + i] * x[i];
        y[o] = s;
    }
}

static void ref_rope(double *v, int pos, double theta) { /* one head (D), pairs (i, i + D/2) */
    for (int i = 0; i < D / 2; i++) {
        double a = pos * pow(theta, -2.0 * i / D), c = cos(a), s = sin(a);
        double x0 = v[i], x1 = v[i + D / 2];
        v[i] = x0 * c - x1 * s;
        v[i + D / 2] = x1 * c + x0 * s;
    }
}

static double gelu_tanh(double x) { return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); }

/* logits (n, V) of every position of ids (n <= NT). */
static void ref_forward(const model_w *m, const int32_t *ids, int n, double qpas, double *logits) {
    double x[NT][E], q[NT][H * D], k[NT][HKV * D], v[NT][HKV * D], att[NT][H * D];
    double h[E], t[F], u[F], y[E];
    for (int p = 0; p < n; p++)
        for (int i = 0; i < E; i++) x[p][i] = (double)m->emb[(size_t)ids[p] * E + i] * sqrt((double)E);
    for (int l = 0; l < NL; l++) {
        const layer_w *L = &m->L[l];
        const bool local = (l + 1) % 6 != 0;
        for (int p = 0; p < n; p++) {
            memcpy(h, x[p], sizeof h);
            ref_rms(h, E, L->attn_norm);
            ref_matvec(q[p], L->wq, h, H * D, E);
            ref_matvec(k[p], L->wk, h, HKV * D, E);
            ref_matvec(v[p], L->wv, h, HKV * D, E);
            for (int hh = 0; hh < H; hh++) ref_rms(q[p] + hh * D, D, L->q_norm);
            for (int hh = 0; hh < HKV; hh++) ref_rms(k[p] + hh * D, D, L->k_norm);
            for (int hh = 0; hh < H; hh++) ref_rope(q[p] + hh * D, p, local ? THETA_LOCAL : THETA_GLOBAL);
            for (int hh = 0; hh < HKV; hh++) ref_rope(k[p] + hh * D, p, local ? THETA_LOCAL : THETA_GLOBAL);
        }
        for (int p = 0; p < n; p++)
            for (int hh = 0; hh < H; hh++) {
                const int kh = hh / (H / HKV), j0 = local && p - WIN + 1 > 0 ? p - WIN + 1 : 0;
                double sc[NT], mx = -1e300, sum = 0;
                for (int j = j0; j <= p; j++) {
                    double s = 0;
                    for (int i = 0; i < D; i++) s += q[p][hh * D + i] * k[j][kh * D + i];
                    sc[j] = s / sqrt(qpas);
                    mx = fmax(mx, sc[j]);
                }
                for (int j = j0; j <= p; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (int i = 0; i < D; i++) {
                    double o = 0;
                    for (int j = j0; j <= p; j++) o += sc[j] / sum * v[j][kh * D + i];
                    att[p][hh * D + i] = o;
                }
            }
        for (int p = 0; p < n; p++) {
            ref_matvec(y, L->wo, att[p], E, H * D);
            ref_rms(y, E, L->post_attn);
            for (int i = 0; i < E; i++) x[p][i] += y[i];
            memcpy(h, x[p], sizeof h);
            ref_rms(h, E, L->ffn_norm);
            ref_matvec(t, L->wg, h, F, E);
            ref_matvec(u, L->wu, h, F, E);
            for (int i = 0; i < F; i++) t[i] = gelu_tanh(t[i]) * u[i];
            ref_matvec(y, L->wd, t, E, F);
            ref_rms(y, E, L->post_ffn);
            for (int i = 0; i < E; i++) x[p][i] += y[i];
        }
    }
    for (int p = 0; p < n; p++) {
        memcpy(h, x[p], sizeof h);
        ref_rms(h, E, m->out_norm);
        ref_matvec(logits + (size_t)p * V, m->emb, h, V, E);
    }
}

/* ------------------------------------------------------------- writers */

typedef struct st_spec {
    char name[96];
    int nd;
    int64_t shape[2]; /* outermost first */
    const float *data;
} st_spec;

static size_t st_bytes(const st_spec *t) { return sizeof(float) * (size_t)t->shape[0] * (t->nd > 1 ? t->shape[1] : 1); }

/* One F32 safetensors file of tensors t[0..n). */
static void write_st(const char *path, const st_spec *t, int n) {
    size_t cap = 256 + (size_t)n * 256, len = 0, off = 0;
    char *hdr = malloc(cap);
    len += (size_t)snprintf(hdr + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(hdr + len, cap - len, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld", t[i].name,
                                (long long)t[i].shape[0]);
        if (t[i].nd > 1) len += (size_t)snprintf(hdr + len, cap - len, ",%lld", (long long)t[i].shape[1]);
        len += (size_t)snprintf(hdr + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", off, off + st_bytes(&t[i]));
        off += st_bytes(&t[i]);
    }
    len += (size_t)snprintf(hdr + len, cap - len, "}");
    while (len % 8) hdr[len++] = ' ';
    FILE *f = fopen(path, "wb");
    uint64_t hl = len;
    fwrite(&hl, 8, 1, f);
    fwrite(hdr, 1, len, f);
    for (int i = 0; i < n; i++) fwrite(t[i].data, 1, st_bytes(&t[i]), f);
    fclose(f);
    free(hdr);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

/* Token texts of the tiny vocabulary: 4 specials, 256 bytes, letters. */
static void token_text(int i, char *buf, size_t cap) {
    static const char *const sp[] = {"<pad>", "<eos>", "<bos>", "<unk>"};
    if (i < 4) snprintf(buf, cap, "%s", sp[i]);
    else if (i < 260) snprintf(buf, cap, "<0x%02X>", i - 4);
    else if (i < 286) snprintf(buf, cap, "%c", 'a' + (i - 260));
    else if (i < 312) snprintf(buf, cap, "\xE2\x96\x81%c", 'a' + (i - 286));
    else snprintf(buf, cap, "x%d", i);
}

/* HF-style tokenizer.json of the tiny vocabulary (Gemma's conventions:
 * spaces replaced by U+2581, no prefix space, byte fallback, BOS added). */
static void write_tokenizer_json(const char *dir) {
    size_t cap = 64 * V + 2048, len = 0;
    char *s = malloc(cap), tok[32], path[600];
    len += (size_t)snprintf(s + len, cap - len,
                            "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":0,\"content\":\"<pad>\",\"special\":true},"
                            "{\"id\":1,\"content\":\"<eos>\",\"special\":true},{\"id\":2,\"content\":\"<bos>\","
                            "\"special\":true},{\"id\":3,\"content\":\"<unk>\",\"special\":true}],"
                            "\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":"
                            "\"\xE2\x96\x81\"},\"pre_tokenizer\":null,\"post_processor\":{\"type\":"
                            "\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<bos>\",\"type_id\":0}},"
                            "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}]},\"model\":{\"type\":\"BPE\","
                            "\"byte_fallback\":true,\"unk_token\":\"<unk>\",\"merges\":[],\"vocab\":{");
    for (int i = 0; i < V; i++) {
        token_text(i, tok, sizeof tok);
        len += (size_t)snprintf(s + len, cap - len, "%s\"%s\":%d", i ? "," : "", tok, i);
    }
    snprintf(s + len, cap - len, "}}}");
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_text(path, s);
    free(s);
}

#define CONFIG_DIMS "\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":7," \
                    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":32,\"vocab_size\":320," \
                    "\"max_position_embeddings\":64,\"rms_norm_eps\":1e-06"

/* HF directory: config.json (extra: more keys, or NULL) + model.safetensors
 * (drop: a tensor name to leave out, or NULL) + tokenizer.json. */
static void write_hf(const char *dir, const model_w *m, const char *config, const char *drop) {
    mkdir(dir, 0755);
    st_spec t[2 + NL * 13];
    int n = 0;
    t[n++] = (st_spec){"model.embed_tokens.weight", 2, {V, E}, m->emb};
    t[n++] = (st_spec){"model.norm.weight", 1, {E, 0}, m->out_norm};
    for (int l = 0; l < NL; l++) {
        const layer_w *L = &m->L[l];
        struct { const char *sfx; int nd; int64_t r, c; const float *d; } s[] = {
            {"input_layernorm.weight", 1, E, 0, L->attn_norm},
            {"self_attn.q_proj.weight", 2, H * D, E, L->wq},
            {"self_attn.k_proj.weight", 2, HKV * D, E, L->wk},
            {"self_attn.v_proj.weight", 2, HKV * D, E, L->wv},
            {"self_attn.o_proj.weight", 2, E, H * D, L->wo},
            {"self_attn.q_norm.weight", 1, D, 0, L->q_norm},
            {"self_attn.k_norm.weight", 1, D, 0, L->k_norm},
            {"post_attention_layernorm.weight", 1, E, 0, L->post_attn},
            {"pre_feedforward_layernorm.weight", 1, E, 0, L->ffn_norm},
            {"post_feedforward_layernorm.weight", 1, E, 0, L->post_ffn},
            {"mlp.gate_proj.weight", 2, F, E, L->wg},
            {"mlp.up_proj.weight", 2, F, E, L->wu},
            {"mlp.down_proj.weight", 2, E, F, L->wd},
        };
        for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
            st_spec *e = &t[n];
            snprintf(e->name, sizeof e->name, "model.layers.%d.%s", l, s[i].sfx);
            if (drop && !strcmp(drop, e->name)) continue;
            e->nd = s[i].nd;
            e->shape[0] = s[i].r;
            e->shape[1] = s[i].c;
            e->data = s[i].d;
            n++;
        }
    }
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_st(path, t, n);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, config);
    write_tokenizer_json(dir);
}

/* GGUF the way llama.cpp's converter writes Gemma 3: norms hold 1 + w. */
static void write_gguf(const char *path, const model_w *m, bool swa_keys) {
    lk_gguf_writer *w = NULL;
    loki_error err = {0};
    CHECK_OK(lk_gguf_writer_init(&w, &err));
    lk_gguf_writer_add_str(w, "general.architecture", "gemma3");
    lk_gguf_writer_add_u32(w, "gemma3.context_length", 64);
    lk_gguf_writer_add_u32(w, "gemma3.embedding_length", E);
    lk_gguf_writer_add_u32(w, "gemma3.block_count", NL);
    lk_gguf_writer_add_u32(w, "gemma3.feed_forward_length", F);
    lk_gguf_writer_add_u32(w, "gemma3.attention.head_count", H);
    lk_gguf_writer_add_u32(w, "gemma3.attention.head_count_kv", HKV);
    lk_gguf_writer_add_u32(w, "gemma3.attention.key_length", D);
    lk_gguf_writer_add_u32(w, "gemma3.attention.value_length", D);
    lk_gguf_writer_add_f32(w, "gemma3.attention.layer_norm_rms_epsilon", (float)EPS);
    lk_gguf_writer_add_f32(w, "gemma3.rope.freq_base", (float)THETA_GLOBAL);
    if (swa_keys) {
        lk_gguf_writer_add_u32(w, "gemma3.attention.sliding_window", WIN);
        lk_gguf_writer_add_f32(w, "gemma3.rope.freq_base_swa", (float)THETA_LOCAL);
    }
    lk_gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
    char tok[V][32];
    const char *toks[V];
    float scores[V];
    int32_t types[V];
    for (int i = 0; i < V; i++) {
        token_text(i, tok[i], sizeof tok[i]);
        toks[i] = tok[i];
        scores[i] = -(float)i;
        types[i] = i < 4 ? 3 : i < 260 ? 6 : 1;
    }
    lk_gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, V);
    lk_gguf_writer_add_arr(w, "tokenizer.ggml.scores", LK_GGUF_FLOAT32, scores, V);
    lk_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", LK_GGUF_INT32, types, V);
    lk_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 2);
    lk_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 1);
    lk_gguf_writer_add_bool(w, "tokenizer.ggml.add_space_prefix", false);
    float *buf = malloc(sizeof(float) * E);
#define ADD_MAT(name, data, rows, cols) \
    lk_gguf_writer_add_tensor(w, name, LK_DTYPE_F32, 2, (int64_t[]){cols, rows}, data)
#define ADD_NORM(name, data, n) do { for (int i_ = 0; i_ < (n); i_++) buf[i_] = 1.0f + (data)[i_]; \
        lk_gguf_writer_add_tensor(w, name, LK_DTYPE_F32, 1, (int64_t[]){n}, buf); } while (0)
    ADD_MAT("token_embd.weight", m->emb, V, E);
    ADD_NORM("output_norm.weight", m->out_norm, E);
    char nm[96];
    for (int l = 0; l < NL; l++) {
        const layer_w *L = &m->L[l];
#define LN(sfx) (snprintf(nm, sizeof nm, "blk.%d.%s", l, sfx), nm)
        ADD_NORM(LN("attn_norm.weight"), L->attn_norm, E);
        ADD_MAT(LN("attn_q.weight"), L->wq, H * D, E);
        ADD_MAT(LN("attn_k.weight"), L->wk, HKV * D, E);
        ADD_MAT(LN("attn_v.weight"), L->wv, HKV * D, E);
        ADD_MAT(LN("attn_output.weight"), L->wo, E, H * D);
        ADD_NORM(LN("attn_q_norm.weight"), L->q_norm, D);
        ADD_NORM(LN("attn_k_norm.weight"), L->k_norm, D);
        ADD_NORM(LN("post_attention_norm.weight"), L->post_attn, E);
        ADD_NORM(LN("ffn_norm.weight"), L->ffn_norm, E);
        ADD_NORM(LN("post_ffw_norm.weight"), L->post_ffn, E);
        ADD_MAT(LN("ffn_gate.weight"), L->wg, F, E);
        ADD_MAT(LN("ffn_up.weight"), L->wu, F, E);
        ADD_MAT(LN("ffn_down.weight"), L->wd, E, F);
#undef LN
    }
#undef ADD_MAT
#undef ADD_NORM
    free(buf);
    CHECK_OK(lk_gguf_writer_write(w, path, &err));
    lk_gguf_writer_free(w);
}

/* --------------------------------------------------------------- checks */

/* Largest |ours - ref| relative to the largest |ref| over rows (n, V). */
static double rel_err(const float *ours, const double *ref, int n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < (size_t)n * V; i++) {
        md = fmax(md, fabs((double)ours[i] - ref[i]));
        mr = fmax(mr, fabs(ref[i]));
    }
    return md / mr;
}

/* Logits of ids through `m`: prompt chunks of n_batch (all rows), and one
 * token at a time; both against ref (NT, V). */
static void check_model(loki_model *m, const char *label, const int32_t *ids, const double *ref) {
    loki_error err = {0};
    loki_context_params cp = loki_context_default_params();
    cp.n_ctx = NT;
    cp.n_batch = 7; /* chunks that start inside and outside the window */
    cp.n_threads = 2;
    cp.type_k = cp.type_v = LOKI_KV_F32; /* the reference's float numbers, to 1e-4 */
    loki_context *ctx = NULL;
    CHECK_OK(loki_context_init(m, &cp, &ctx, &err));
    if (!ctx) return;
    CHECK_OK(loki_eval(ctx, ids, NT, true, &err));
    double e = rel_err(loki_get_logits(ctx, NULL), ref, NT);
    printf("%s: prompt (batches of 7): max |dlogit| / max |logit| = %.2e\n", label, e);
    CHECKF(e <= TOL, "%s: prompt logits differ from the reference by %.3g", label, e);
    loki_context_reset(ctx);
    double ed = 0;
    for (int p = 0; p < NT; p++) {
        CHECK_OK(loki_eval(ctx, ids + p, 1, false, &err));
        ed = fmax(ed, rel_err(loki_get_logits(ctx, NULL), ref + (size_t)p * V, 1));
    }
    printf("%s: decode (one token at a time): max relative error %.2e\n", label, ed);
    CHECKF(ed <= TOL, "%s: decode logits differ from the reference by %.3g", label, ed);
    loki_context_free(ctx);
}

/* Loki (identity PCA, kf 0.25, df 0.5) on the GGUF model: the local
 * layers keep the full key width and read exactly what dense attention
 * reads over their window; the global layers read less than dense. */
static void check_loki_layers(loki_model *m, const int32_t *ids) {
    loki_error err = {0};
    loki_pca *pca = NULL;
    CHECK_OK(lk_pca_init(&pca, NL, HKV, D, &err));
    if (!pca) return;
    for (int b = 0; b < LK_PCA_N_BASIS; b++)
        for (int lh = 0; lh < NL * HKV; lh++)
            for (int i = 0; i < D; i++) pca->components[b][((size_t)lh * D + i) * D + i] = 1.0f;
    loki_context_params cp = loki_context_default_params();
    cp.n_ctx = NT;
    cp.n_threads = 1;
    cp.type_k = cp.type_v = LOKI_KV_F32; /* bytes counted below are f32 */
    loki_context *ctx = NULL;
    CHECK_OK(loki_context_init(m, &cp, &ctx, &err));
    loki_attn_params ap = loki_attn_default_params();
    ap.method = LOKI_ATTN_LOKI;
    ap.kf = 0.25f;
    ap.df = 0.5f;
    ap.pca = pca;
    CHECK_OK(loki_context_set_attn(ctx, &ap, &err));
    for (int p = 0; ctx && p < NT; p++) CHECK_OK(loki_eval(ctx, ids + p, 1, false, &err));
    for (int l = 0; ctx && l < NL; l++) {
        const bool local = (l + 1) % 6 != 0;
        lk_attn_stats s;
        lk_attn_get_stats(ctx->attn, l, &s);
        for (int h = 0; h < HKV; h++) CHECK_EQ_INT(lk_kv_d(&ctx->kv, l, h), local ? D : D / 2);
        /* dense over the window: decode steps at positions 0..NT-1 read min(p+1, WIN) keys and values */
        double dense = 0;
        for (int p = 0; p < NT; p++) dense += 4.0 * 2 * D * HKV * (local ? (p + 1 < WIN ? p + 1 : WIN) : p + 1);
        CHECKF(s.bytes_dense == dense, "layer %d: bytes_dense %.0f, want %.0f", l, s.bytes_dense, dense);
        if (local) CHECKF(s.bytes_read == s.bytes_dense, "local layer %d: read %.0f of %.0f", l, s.bytes_read,
                          s.bytes_dense);
        else CHECKF(s.bytes_read < 0.8 * s.bytes_dense, "global layer %d: read %.0f of %.0f", l, s.bytes_read,
                    s.bytes_dense);
    }
    loki_context_free(ctx);
    loki_pca_free(pca);
}

/* A PCA file of a sliding-window model records the window and pattern, and
 * the Rank statistics mark the global layers as the ones Loki uses. */
static void check_pca_file(loki_model *m, const char *base) {
    loki_error err = {0};
    loki_pca *pca = NULL, *back = NULL;
    CHECK_OK(lk_pca_init(&pca, NL, HKV, D, &err));
    if (!pca) return;
    for (int b = 0; b < LK_PCA_N_BASIS; b++)
        for (int lh = 0; lh < NL * HKV; lh++)
            for (int i = 0; i < D; i++) {
                pca->components[b][((size_t)lh * D + i) * D + i] = 1.0f;
                pca->eigenvalues[b][(size_t)lh * D + i] = (float)(D - i);
            }
    CHECK_OK(lk_model_fingerprint(m, pca->fingerprint, &err));
    memset(pca->calib_sha256, '0', 64);
    pca->swa_window = m->hp.swa_window;
    pca->swa_pattern = m->hp.swa_pattern;
    char path[700];
    snprintf(path, sizeof path, "%s/swa.pca.gguf", base);
    CHECK_OK(lk_pca_save(pca, path, NULL, &err));
    CHECKF(loki_pca_load(path, m, &back, &err) == LOKI_OK, "%s", err.msg);
    if (back) {
        CHECK_EQ_INT(back->swa_window, WIN);
        CHECK_EQ_INT(back->swa_pattern, 6);
        lk_rank_stats s = {0};
        CHECK_OK(lk_rank_stats_compute(back, 90.0, &s, &err));
        CHECK_EQ_INT(s.n_used, 1); /* layers 0..6: only layer 5 is global */
        for (int l = 0; s.used && l < NL; l++) CHECK_EQ_INT(s.used[l], l == 5);
        CHECK_NEAR(s.used_mean[0], s.layer_mean[5], 1e-12);
        lk_rank_stats_free(&s);
    }
    loki_pca_free(back);
    loki_pca_free(pca);
}

static void expect_fail(const char *path, loki_status want, const char *kw) {
    loki_model *m = NULL;
    loki_error err = {0};
    loki_status st = loki_model_open(path, NULL, &m, &err);
    CHECKF(st == want && strstr(err.msg, kw), "%s: status %d (want %d), message '%s' (want '%s')", path, (int)st,
           (int)want, err.msg, kw);
    loki_model_close(m);
}

static void check_bad(const char *base, const model_w *w) {
    char dir[600];
    const struct { const char *name, *cfg; loki_status st; const char *kw; } cases[] = {
        {"bad_types", "{\"model_type\":\"gemma3_text\"," CONFIG_DIMS ",\"layer_types\":[\"sliding_attention\","
         "\"full_attention\",\"sliding_attention\",\"sliding_attention\",\"full_attention\",\"sliding_attention\","
         "\"full_attention\"]}", LOKI_ERR_UNSUPPORTED, "layer_types: layer 3 is local"},
        {"bad_act", "{\"model_type\":\"gemma3_text\"," CONFIG_DIMS ",\"hidden_activation\":\"gelu\"}",
         LOKI_ERR_UNSUPPORTED, "hidden_activation 'gelu'"},
        {"multimodal", "{\"model_type\":\"gemma3\"," CONFIG_DIMS "}", LOKI_ERR_UNSUPPORTED, "gemma3_text"},
        {"softcap", "{\"model_type\":\"gemma3_text\"," CONFIG_DIMS ",\"attn_logit_softcapping\":50.0}",
         LOKI_ERR_UNSUPPORTED, "attn_logit_softcapping"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(dir, sizeof dir, "%s/%s", base, cases[i].name);
        write_hf(dir, w, cases[i].cfg, NULL);
        expect_fail(dir, cases[i].st, cases[i].kw);
    }
    snprintf(dir, sizeof dir, "%s/no_qnorm", base);
    write_hf(dir, w, "{\"architectures\":[\"Gemma3ForCausalLM\"]," CONFIG_DIMS "}",
             "model.layers.3.self_attn.q_norm.weight");
    expect_fail(dir, LOKI_ERR_FORMAT, "missing tensor 'model.layers.3.self_attn.q_norm.weight'");
}

int main(void) {
    char base[] = "/tmp/loki_test_gemma3_XXXXXX";
    if (!mkdtemp(base)) test_skip("cannot create a temporary directory");
    model_w *w = calloc(1, sizeof *w);
    uint64_t seed = 0x6E3A3ull;
    test_fill_random(w->emb, V * E, -1.0f, 1.0f, &seed);
    test_fill_random(w->out_norm, E, -0.5f, 0.5f, &seed);
    for (int l = 0; l < NL; l++) {
        layer_w *L = &w->L[l];
        float *norms[] = {L->attn_norm, L->post_attn, L->ffn_norm, L->post_ffn};
        for (int i = 0; i < 4; i++) test_fill_random(norms[i], E, -0.5f, 0.5f, &seed);
        test_fill_random(L->q_norm, D, -0.5f, 0.5f, &seed);
        test_fill_random(L->k_norm, D, -0.5f, 0.5f, &seed);
        float *mats[] = {L->wq, L->wk, L->wv, L->wo, L->wg, L->wu, L->wd};
        size_t sizes[] = {H * D * E, HKV * D * E, HKV * D * E, E * H * D, F * E, F * E, E * F};
        for (int i = 0; i < 7; i++) test_fill_random(mats[i], sizes[i], -0.15f, 0.15f, &seed);
    }
    int32_t ids[NT];
    for (int i = 0; i < NT; i++) ids[i] = i == 0 ? 2 : 4 + (int32_t)((i * 7919u) % (V - 4));
    double *ref_hf = malloc(sizeof(double) * NT * V), *ref_gguf = malloc(sizeof(double) * NT * V);
    ref_forward(w, ids, NT, QPAS, ref_hf);
    ref_forward(w, ids, NT, (double)D, ref_gguf); /* GGUF: no query_pre_attn_scalar, head_dim */

    /* Hugging Face directory: layer_types and rope_local_base_freq given */
    char dir[600], path[600];
    snprintf(dir, sizeof dir, "%s/hf", base);
    write_hf(dir, w, "{\"architectures\":[\"Gemma3ForCausalLM\"],\"model_type\":\"gemma3_text\"," CONFIG_DIMS
                     ",\"hidden_activation\":\"gelu_pytorch_tanh\",\"query_pre_attn_scalar\":24,\"sliding_window\":5,"
                     "\"rope_theta\":1000000.0,\"rope_local_base_freq\":100.0,\"rope_scaling\":null,"
                     "\"final_logit_softcapping\":null,\"attn_logit_softcapping\":null,\"layer_types\":["
                     "\"sliding_attention\",\"sliding_attention\",\"sliding_attention\",\"sliding_attention\","
                     "\"sliding_attention\",\"full_attention\",\"sliding_attention\"]}", NULL);
    loki_model *m = NULL;
    loki_error err = {0};
    CHECKF(loki_model_open(dir, NULL, &m, &err) == LOKI_OK, "%s", err.msg);
    if (m) {
        const lk_hparams *hp = &m->hp;
        CHECK(strcmp(hp->arch, "gemma3") == 0);
        CHECK_EQ_INT(hp->swa_window, WIN);
        CHECK_EQ_INT(hp->swa_pattern, 6);
        CHECK(hp->rope_theta == 1e6f && hp->rope_theta_swa == 100.0f && hp->rope_style == LK_ROPE_NEOX);
        CHECK(hp->attn_scale == (float)(1.0 / sqrt(QPAS)) && hp->embd_scale == 8.0f);
        CHECK_EQ_INT(hp->ffn_act, LK_ACT_GELU_TANH);
        CHECK(m->output.data == m->tok_embd.data); /* Gemma3TextConfig ties by default */
        /* 1 + w folded at load, in f32 */
        CHECK(m->layers[2].attn_q_norm.dtype == LK_DTYPE_F32 &&
              ((const float *)m->layers[2].attn_q_norm.data)[5] == 1.0f + w->L[2].q_norm[5]);
        check_model(m, "hf", ids, ref_hf);
        loki_model_close(m);
    }
    /* transformers >= 5 form: per-layer-type rope_parameters, no layer_types
     * (sliding_window_pattern 6 by default) */
    snprintf(dir, sizeof dir, "%s/hf5", base);
    write_hf(dir, w, "{\"model_type\":\"gemma3_text\"," CONFIG_DIMS ",\"query_pre_attn_scalar\":24,"
                     "\"sliding_window\":5,\"rope_parameters\":{\"full_attention\":{\"rope_type\":\"default\","
                     "\"rope_theta\":1000000.0},\"sliding_attention\":{\"rope_type\":\"default\","
                     "\"rope_theta\":100.0}}}",
             NULL);
    m = NULL;
    CHECKF(loki_model_open(dir, NULL, &m, &err) == LOKI_OK, "%s", err.msg);
    if (m) {
        check_model(m, "hf rope_parameters", ids, ref_hf);
        loki_model_close(m);
    }

    /* GGUF as llama.cpp writes it */
    snprintf(path, sizeof path, "%s/tiny.gguf", base);
    write_gguf(path, w, true);
    m = NULL;
    CHECKF(loki_model_open(path, NULL, &m, &err) == LOKI_OK, "%s", err.msg);
    if (m) {
        CHECK(m->hp.attn_scale == 1.0f / sqrtf((float)D));
        CHECK(m->hp.rope_theta_swa == 100.0f && m->hp.swa_window == WIN && m->hp.swa_pattern == 6);
        check_model(m, "gguf", ids, ref_gguf);
        check_loki_layers(m, ids);
        check_pca_file(m, base);
        loki_model_close(m);
    }
    /* without the optional keys: llama.cpp's defaults (local base 10000), and
     * no sliding window at all when the file has none */
    snprintf(path, sizeof path, "%s/nokeys.gguf", base);
    write_gguf(path, w, false);
    m = NULL;
    CHECKF(loki_model_open(path, NULL, &m, &err) == LOKI_OK, "%s", err.msg);
    if (m) {
        CHECK_EQ_INT(m->hp.swa_window, 0);
        CHECK(!lk_layer_is_local(&m->hp, 0));
        CHECK(m->hp.rope_theta_swa == 10000.0f);
        loki_model_close(m);
    }
    check_bad(base, w);

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0) printf("note: could not remove %s\n", base);
    free(ref_hf);
    free(ref_gguf);
    free(w);
    return test_finish();
}
