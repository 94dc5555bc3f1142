/*
 * test_convert_random.c - `loki convert --random-weights` (src/convert/random.c)
 * on a small Llama shape (a config.json written into a temporary folder), in
 * every --type:
 *  1. the GGUF loads in loki, and every tensor (token_embd, output, the norms,
 *     every layer matrix) has the dtype, shape and bytes of the model that
 *     lk_model_init_random (bench decode --random-weights) builds for the same
 *     shape, type and seed; another seed gives other bytes;
 *  2. the hyperparameters read back equal the shape's, the placeholder
 *     vocabulary has n_vocab tokens with the byte tokens llama.cpp looks for
 *     (<0x0A>) and the marker keys (loki.random_weights.*);
 *  3. bad input: a shape of another architecture, a vocabulary under 259, a
 *     width the K-quant blocks do not divide, an unknown shape name, each an
 *     error with a message and no file (nor temporary) left.
 * Runs without ../shared (no skip).
 */
#include "test.h"

#include "convert/convert.h"
#include "format/gguf.h"
#include "model/model.h"
#include "model/random.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_TYPES 7
static const lk_dtype k_types[N_TYPES] = {LK_DTYPE_F32,  LK_DTYPE_F16,  LK_DTYPE_BF16, LK_DTYPE_Q8_0,
                                          LK_DTYPE_Q4_0, LK_DTYPE_Q4_K, LK_DTYPE_Q6_K};

/* A small GQA Llama: widths multiples of 256 (the K-quant block), 301 tokens
 * (the embedding's byte size a multiple of 64 in no quantized type). */
static const char k_config[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 256,\n"
    " \"intermediate_size\": 768, \"num_attention_heads\": 8, \"num_key_value_heads\": 4,\n"
    " \"num_hidden_layers\": 3, \"vocab_size\": 301, \"max_position_embeddings\": 2048,\n"
    " \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, \"head_dim\": 64}\n";

/* Write text to dir/name; the path into out (cap bytes). */
static void write_file(const char *dir, const char *name, const char *text, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", dir, name);
    FILE *f = fopen(out, "w");
    CHECKF(f != NULL, "cannot create %s", out);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* Number of entries in dir besides . and .. */
static int dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* Tensor a (from the GGUF) has b's dtype, shape and bytes. */
static bool same_tensor(const lk_tensor *a, const lk_tensor *b) {
    return a->data && b->data && a->dtype == b->dtype && a->ne[0] == b->ne[0] && a->ne[1] == b->ne[1] &&
           a->nbytes == b->nbytes && memcmp(a->data, b->data, a->nbytes) == 0;
}

/* 1 and 2 for one type. */
static void check_type(const char *dir, const char *cfg, lk_dtype dt) {
    const char *tn = lk_dtype_name(dt);
    char out[700];
    snprintf(out, sizeof out, "%s/random-%s.gguf", dir, tn);
    loki_error err = {0};
    loki_status st = lk_convert_random_to_gguf(cfg, out, dt, 1234, NULL, &err);
    CHECKF(st == LOKI_OK, "convert --random-weights --type %s: %s", tn, err.msg);
    if (st) return;
    lk_hparams hp;
    test_need(lk_hparams_from_shape(cfg, &hp, &err), &err, "shape");
    loki_model *g = NULL, *r = calloc(1, sizeof(*r));
    if (!r) test_need(LOKI_ERR_NOMEM, &err, "model struct");
    test_need(lk_model_init_random(r, &hp, dt, 1234, &err), &err, "random model");
    st = loki_model_open(out, NULL, &g, &err);
    CHECKF(st == LOKI_OK, "%s: load: %s", tn, err.msg);
    if (!st) {
        /* 1. every tensor, byte for byte */
        int n = 0, same = 0;
        const lk_tensor *ga[3 + 9 * 3], *ra[3 + 9 * 3];
        ga[n] = &g->tok_embd, ra[n++] = &r->tok_embd;
        ga[n] = &g->output, ra[n++] = &r->output;
        ga[n] = &g->out_norm, ra[n++] = &r->out_norm;
        for (int l = 0; l < hp.n_layer && l < 3; l++) {
            const lk_layer *a = &g->layers[l], *b = &r->layers[l];
            const lk_tensor *la[] = {&a->attn_norm, &a->ffn_norm, &a->wq, &a->wk, &a->wv,
                                     &a->wo, &a->w_gate, &a->w_up, &a->w_down};
            const lk_tensor *lb[] = {&b->attn_norm, &b->ffn_norm, &b->wq, &b->wk, &b->wv,
                                     &b->wo, &b->w_gate, &b->w_up, &b->w_down};
            for (int i = 0; i < 9; i++) ga[n] = la[i], ra[n++] = lb[i];
        }
        for (int i = 0; i < n; i++) same += same_tensor(ga[i], ra[i]);
        CHECKF(same == n, "%s: %d of %d tensors equal the --random-weights model's", tn, same, n);
        CHECKF(g->output.data != g->tok_embd.data, "%s: output is its own tensor (not tied)", tn);
        /* 2. hyperparameters, vocabulary, marker keys */
        const lk_hparams *h = &g->hp;
        CHECKF(h->n_embd == hp.n_embd && h->n_layer == hp.n_layer && h->n_head == hp.n_head &&
                   h->n_head_kv == hp.n_head_kv && h->head_dim == hp.head_dim && h->n_ff == hp.n_ff &&
                   h->n_vocab == hp.n_vocab && h->n_ctx_train == hp.n_ctx_train && h->rope_theta == hp.rope_theta,
               "%s: hyperparameters read back", tn);
        CHECKF(g->vocab.n_tokens == hp.n_vocab, "%s: %d tokens", tn, (int)g->vocab.n_tokens);
        char s[64] = "";
        CHECK(lk_gguf_get_cstr(g->gguf, "tokenizer.ggml.model", s, sizeof s) && !strcmp(s, "llama"));
        const lk_gguf_kv *toks = lk_gguf_find(g->gguf, "tokenizer.ggml.tokens");
        CHECK(toks && toks->arr_n == (uint64_t)hp.n_vocab && toks->arr_str[3 + 10].len == 6 &&
              !memcmp(toks->arr_str[3 + 10].ptr, "<0x0A>", 6));
        CHECK(lk_gguf_get_cstr(g->gguf, "loki.random_weights.type", s, sizeof s) && !strcmp(s, tn));
        CHECK(lk_gguf_get_cstr(g->gguf, "loki.random_weights.shape", s, sizeof s) && strstr(s, "config.json"));
        printf("%s: %d tensors equal, %d tokens\n", tn, same, (int)g->vocab.n_tokens);
    }
    loki_model_close(g);
    loki_model_close(r);
    /* another seed: other weights */
    if (dt == LK_DTYPE_Q8_0) {
        st = lk_convert_random_to_gguf(cfg, out, dt, 99, NULL, &err);
        CHECKF(st == LOKI_OK, "seed 99: %s", err.msg);
        loki_model *g2 = NULL, *r2 = calloc(1, sizeof(*r2));
        if (!r2) test_need(LOKI_ERR_NOMEM, &err, "model struct");
        test_need(lk_model_init_random(r2, &hp, dt, 1234, &err), &err, "random model");
        if (!st && !loki_model_open(out, NULL, &g2, &err))
            CHECKF(!same_tensor(&g2->layers[0].wq, &r2->layers[0].wq), "seed 99 differs from seed 1234");
        loki_model_close(g2);
        loki_model_close(r2);
    }
    unlink(out);
}

/* 3: convert fails with LOKI_ERR_ARG/UNSUPPORTED, a message containing
 * `want`, and leaves dir empty. */
static void check_fails(const char *what, const char *dir, const char *shape, lk_dtype dt, const char *want) {
    char out[700];
    snprintf(out, sizeof out, "%s/bad.gguf", dir);
    loki_error err = {0};
    loki_status st = lk_convert_random_to_gguf(shape, out, dt, 1234, NULL, &err);
    CHECKF(st != LOKI_OK && strstr(err.msg, want), "%s: status %d, message '%s' (want '%s')", what, (int)st,
           err.msg, want);
    CHECKF(dir_entries(dir) == 0, "%s: %d files left in the output folder", what, dir_entries(dir));
}

int main(void) {
    char dir[] = "/tmp/loki_test_convert_random_XXXXXX", odir[600];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(odir, sizeof odir, "%s/o", dir);
    CHECK(mkdir(odir, 0700) == 0);
    char cfg[600], gemma[600], small[600], odd[600];
    write_file(dir, "config.json", k_config, cfg, sizeof cfg);
    for (int i = 0; i < N_TYPES; i++) check_type(odir, cfg, k_types[i]);

    write_file(dir, "gemma.json",
               "{\"model_type\": \"gemma3_text\", \"hidden_size\": 256, \"intermediate_size\": 512, "
               "\"num_attention_heads\": 4, \"num_key_value_heads\": 1, \"num_hidden_layers\": 2, "
               "\"vocab_size\": 300, \"head_dim\": 64}\n", gemma, sizeof gemma);
    write_file(dir, "small.json",
               "{\"model_type\": \"llama\", \"hidden_size\": 256, \"intermediate_size\": 512, "
               "\"num_attention_heads\": 4, \"num_key_value_heads\": 4, \"num_hidden_layers\": 1, "
               "\"vocab_size\": 100}\n", small, sizeof small);
    write_file(dir, "odd.json",
               "{\"model_type\": \"llama\", \"hidden_size\": 256, \"intermediate_size\": 512, "
               "\"num_attention_heads\": 8, \"num_key_value_heads\": 2, \"num_hidden_layers\": 1, "
               "\"vocab_size\": 300}\n", odd, sizeof odd);
    check_fails("gemma3 shape", odir, gemma, LK_DTYPE_F16, "only llama shapes");
    check_fails("vocab 100", odir, small, LK_DTYPE_F16, "vocab_size 100 is below 259");
    check_fails("k/v width 64 in q4_k", odir, odd, LK_DTYPE_Q4_K, "multiples of 256");
    check_fails("unknown shape", odir, "llama9-1b", LK_DTYPE_F16, "unknown model shape 'llama9-1b'");
    check_fails("q5_k", odir, cfg, LK_DTYPE_Q5_K, "is not one of");

    unlink(cfg), unlink(gemma), unlink(small), unlink(odd);
    rmdir(odir);
    CHECKF(rmdir(dir) == 0, "temporary folder %s left non-empty", dir);
    return test_finish();
}
