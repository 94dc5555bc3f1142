/*
 * test_load_hf.c - Hugging Face loader: the real fixture-15m directory,
 * small synthetic checkpoints written at run time (sharded with an index,
 * the older top-level rope_theta/rope_scaling form, Qwen2 biases) and bad
 * config.json / checkpoint contents.
 */
#include "test.h"

#include "format/hf_config.h"
#include "format/safetensors.h"
#include "model/model.h"

#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ writers */

typedef struct st_spec {
    char name[96];
    const char *dtype;
    int nd;
    int64_t shape[2];   /* outermost first */
    void *data;         /* owned by the builder */
    size_t nbytes;
} st_spec;

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

/* Write tensors t[0..n) as one well-formed safetensors file. */
static void write_st(const char *path, const st_spec *t, int n) {
    size_t cap = 256 + (size_t)n * 256, len = 0, off = 0;
    char *hdr = malloc(cap);
    len += (size_t)snprintf(hdr + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(hdr + len, cap - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                                t[i].name, t[i].dtype);
        for (int k = 0; k < t[i].nd; k++)
            len += (size_t)snprintf(hdr + len, cap - len, "%s%lld", k ? "," : "",
                                    (long long)t[i].shape[k]);
        len += (size_t)snprintf(hdr + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", off,
                                off + t[i].nbytes);
        off += t[i].nbytes;
    }
    len += (size_t)snprintf(hdr + len, cap - len, "}");
    while (len % 8) hdr[len++] = ' ';
    FILE *f = fopen(path, "wb");
    uint64_t hl = len;
    fwrite(&hl, 8, 1, f);
    fwrite(hdr, 1, len, f);
    for (int i = 0; i < n; i++) fwrite(t[i].data, 1, t[i].nbytes, f);
    fclose(f);
    free(hdr);
}

/* Deterministic value of element j of tensor i. */
static float tval(int i, int64_t j) { return sinf(0.37f * (float)i + 0.011f * (float)j); }

/* Fill spec with name/dtype/shape (rows == 0: vector of cols) and data. */
static void make_tensor(st_spec *s, int idx, const char *name, const char *dtype, int64_t rows,
                        int64_t cols) {
    snprintf(s->name, sizeof s->name, "%s", name);
    s->dtype = dtype;
    s->nd = rows ? 2 : 1;
    s->shape[0] = rows ? rows : cols;
    s->shape[1] = cols;
    int64_t n = (rows ? rows : 1) * cols;
    size_t es = strcmp(dtype, "F32") == 0 ? 4 : 2;
    s->nbytes = (size_t)n * es;
    s->data = malloc(s->nbytes);
    for (int64_t j = 0; j < n; j++) {
        float v = tval(idx, j);
        if (es == 4) {
            memcpy((uint8_t *)s->data + 4 * j, &v, 4);
        } else {
            uint16_t h = strcmp(dtype, "F16") == 0 ? lk_f32_to_f16(v) : lk_f32_to_bf16(v);
            memcpy((uint8_t *)s->data + 2 * j, &h, 2);
        }
    }
}

/* Synthetic model: vocab 8192 (so fixture-15m's tokenizer.json fits), embd
 * 64, 4 heads / 2 kv heads of 16, ff 128, 2 layers. */
enum { SV = 8192, SE = 64, SH = 4, SKV = 2, SD = 16, SF = 128, SL = 2 };

typedef struct build_opts {
    bool qwen2;         /* q/k/v biases */
    bool sharded;       /* two shards + index */
    bool tied;          /* no lm_head */
    const char *drop;   /* tensor name to leave out */
    bool bad_wq;        /* layer 1 q_proj with one row too many */
} build_opts;

/* Write the checkpoint into dir; returns the number of tensors written. */
static int build_model(const char *dir, const build_opts *o) {
    st_spec t[64];
    int n = 0;
    char nm[96];
    make_tensor(&t[n], n, "model.embed_tokens.weight", "F16", SV, SE); n++;
    make_tensor(&t[n], n, "model.norm.weight", "F32", 0, SE); n++;
    if (!o->tied) { make_tensor(&t[n], n, "lm_head.weight", "F32", SV, SE); n++; }
    for (int il = 0; il < SL; il++) {
        struct { const char *sfx; const char *dt; int64_t r, c; } L[] = {
            {"input_layernorm.weight", "F32", 0, SE},
            {"self_attn.q_proj.weight", "BF16", SH * SD + (o->bad_wq && il == 1), SE},
            {"self_attn.k_proj.weight", "BF16", SKV * SD, SE},
            {"self_attn.v_proj.weight", "BF16", SKV * SD, SE},
            {"self_attn.o_proj.weight", "BF16", SE, SH * SD},
            {"post_attention_layernorm.weight", "F32", 0, SE},
            {"mlp.gate_proj.weight", "BF16", SF, SE},
            {"mlp.up_proj.weight", "F16", SF, SE},
            {"mlp.down_proj.weight", "BF16", SE, SF},
            {"self_attn.q_proj.bias", "F32", 0, SH * SD},
            {"self_attn.k_proj.bias", "F32", 0, SKV * SD},
            {"self_attn.v_proj.bias", "F32", 0, SKV * SD},
        };
        for (int k = 0; k < (o->qwen2 ? 12 : 9); k++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s", il, L[k].sfx);
            if (o->drop && strcmp(o->drop, nm) == 0) continue;
            make_tensor(&t[n], n, nm, L[k].dt, L[k].r, L[k].c);
            n++;
        }
    }
    char path[600];
    if (!o->sharded) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        write_st(path, t, n);
    } else {
        int half = n / 2;
        snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
        write_st(path, t, half);
        snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
        write_st(path, t + half, n - half);
        size_t cap = 256 + (size_t)n * 160, len = 0;
        char *idx = malloc(cap);
        len += (size_t)snprintf(idx, cap, "{\"metadata\":{},\"weight_map\":{");
        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(idx + len, cap - len, "%s\"%s\":\"model-0000%d-of-00002."
                                    "safetensors\"", i ? "," : "", t[i].name, i < half ? 1 : 2);
        snprintf(idx + len, cap - len, "}}");
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        write_text(path, idx);
        free(idx);
    }
    for (int i = 0; i < n; i++) free(t[i].data);
    return n;
}

/* A fresh directory under base with the fixture's tokenizer.json linked in. */
static void make_dir(const char *base, const char *name, const char *tok_json, char *out,
                     size_t cap) {
    snprintf(out, cap, "%s/%s", base, name);
    mkdir(out, 0755);
    char link[700];
    snprintf(link, sizeof link, "%s/tokenizer.json", out);
    if (tok_json && symlink(tok_json, link) != 0) perror("symlink");
}

static void write_config(const char *dir, const char *json) {
    char path[700];
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, json);
}

#define CFG_DIMS "\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2," \
                 "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"vocab_size\":8192," \
                 "\"max_position_embeddings\":131072,\"rms_norm_eps\":1e-06"

/* Open `dir` expecting failure with status `want` and a message naming
 * `name_in_msg` and containing `keyword`. */
static void expect_open_fail(const char *dir, loki_status want, const char *name_in_msg,
                             const char *keyword) {
    loki_model *m = NULL;
    loki_error err = {0};
    loki_status st = loki_model_open(dir, NULL, &m, &err);
    CHECKF(st == want, "%s: status %d, want %d: %.400s", dir, (int)st, (int)want, err.msg);
    CHECKF(strstr(err.msg, name_in_msg) != NULL, "names '%s': %.400s", name_in_msg, err.msg);
    CHECKF(strstr(err.msg, keyword) != NULL, "has '%s': %.400s", keyword, err.msg);
    CHECK(m == NULL);
}

/* ------------------------------------------------------------- tests */

/* Element j of tensor t as float (F32/F16/BF16). */
static float elem(const lk_tensor *t, int64_t j) {
    float v;
    lk_row_to_f32(t->dtype, (const uint8_t *)t->data, &v, 1);
    if (j == 0) return v;
    size_t es = t->dtype == LK_DTYPE_F32 ? 4 : 2;
    lk_row_to_f32(t->dtype, (const uint8_t *)t->data + es * (size_t)j, &v, 1);
    return v;
}

static void test_fixture(void) {
    char *dir = test_shared_path("models/fixture-15m");
    char file[600];
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    if (!test_file_exists(file)) { free(dir); return; }
    loki_model *m = NULL;
    loki_error err = {0};
    loki_status st = loki_model_open(dir, NULL, &m, &err);
    CHECKF(st == LOKI_OK, "%.400s", err.msg);
    if (!m) { free(dir); return; }
    const lk_hparams *hp = &m->hp;
    CHECK(strcmp(hp->arch, "llama") == 0 && strcmp(m->format, "hf") == 0);
    CHECK_EQ_INT(hp->n_layer, 8);
    CHECK_EQ_INT(hp->n_embd, 384);
    CHECK_EQ_INT(hp->n_head, 6);
    CHECK_EQ_INT(hp->n_head_kv, 2);
    CHECK_EQ_INT(hp->head_dim, 64);
    CHECK_EQ_INT(hp->rope_dim, 64);
    CHECK_EQ_INT(hp->n_ff, 1024);
    CHECK_EQ_INT(hp->n_vocab, 8192);
    CHECK_EQ_INT(hp->n_ctx_train, 4096);
    CHECK(hp->rope_theta == 10000.0f && hp->rms_eps == 1e-5f);
    CHECK_EQ_INT(hp->rope_style, LK_ROPE_NEOX);
    CHECK_EQ_INT(hp->rope_scaling, LK_ROPE_SCALING_NONE);
    CHECK(m->output.data == m->tok_embd.data); /* tied */
    CHECK_EQ_INT(m->tok_embd.dtype, LK_DTYPE_BF16);
    CHECK_EQ_INT(m->layers[7].w_down.dtype, LK_DTYPE_BF16);
    CHECK(m->layers[0].bq.data == NULL);

    /* values through the mapping == values read from the file directly */
    FILE *f = fopen(file, "rb");
    uint64_t hlen;
    CHECK(fread(&hlen, 8, 1, f) == 1);
    char *hdr = calloc(1, hlen + 1);
    CHECK(fread(hdr, 1, hlen, f) == hlen);
    struct { const char *name; const lk_tensor *t; } probes[] = {
        {"model.norm.weight", &m->out_norm},
        {"model.layers.5.mlp.down_proj.weight", &m->layers[5].w_down},
        {"model.layers.2.self_attn.v_proj.weight", &m->layers[2].wv},
    };
    for (size_t i = 0; i < LK_ARRAY_LEN(probes); i++) {
        char key[128];
        snprintf(key, sizeof key, "\"%s\"", probes[i].name);
        const char *e = strstr(hdr, key);
        unsigned long long b = 0, en = 0;
        const char *o = e ? strstr(e, "data_offsets") : NULL;
        CHECK(o && sscanf(o, "data_offsets\":[%llu,%llu]", &b, &en) == 2);
        uint16_t want[16];
        fseek(f, (long)(8 + hlen + b), SEEK_SET);
        CHECK(fread(want, 2, 16, f) == 16);
        for (int j = 0; j < 16; j++) CHECK(elem(probes[i].t, j) == lk_bf16_to_f32(want[j]));
        CHECK_EQ_INT(probes[i].t->nbytes, en - b);
    }
    free(hdr);
    fclose(f);
    loki_model_info info;
    loki_model_get_info(m, &info);
    CHECK(strcmp(info.format, "hf") == 0);
    /* 8192*384 + 384 + 8 * (2*384 + 384*384*2 + 2*128*384 + 3*1024*384) */
    int64_t np = 8192LL * 384 + 384 + 8LL * (2 * 384 + 2 * 384 * 384 + 2 * 128 * 384 +
                                               3 * 1024 * 384);
    CHECK_EQ_INT(info.n_params, np);
    CHECK_EQ_INT(info.weight_bytes, 2 * np);
    loki_model_close(m);
    free(dir);
}

/* Sharded llama checkpoint with the older rope form and llama3 scaling. */
static void test_sharded_llama3(const char *base, const char *tok) {
    char dir[600];
    make_dir(base, "sharded", tok, dir, sizeof dir);
    write_config(dir, "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\","
                      CFG_DIMS ",\"rope_theta\":500000.0,\"rope_scaling\":{\"factor\":8.0,"
                      "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
                      "\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"},"
                      "\"tie_word_embeddings\":false,\"hidden_act\":\"silu\"}");
    build_opts o = {.sharded = true};
    build_model(dir, &o);
    loki_model *m = NULL;
    loki_error err = {0};
    CHECKF(loki_model_open(dir, NULL, &m, &err) == LOKI_OK, "%.400s", err.msg);
    if (!m) return;
    const lk_hparams *hp = &m->hp;
    CHECK_EQ_INT(hp->n_embd, SE);
    CHECK_EQ_INT(hp->n_head_kv, SKV);
    CHECK_EQ_INT(hp->head_dim, SD);
    CHECK_EQ_INT(hp->n_ctx_train, 131072);
    CHECK(hp->rope_theta == 500000.0f && hp->rms_eps == 1e-6f);
    CHECK_EQ_INT(hp->rope_scaling, LK_ROPE_SCALING_LLAMA3);
    CHECK(hp->rope_factor == 8.0f && hp->rope_low_freq_factor == 1.0f &&
          hp->rope_high_freq_factor == 4.0f);
    CHECK_EQ_INT(hp->rope_orig_ctx, 8192);
    CHECK_EQ_INT(m->st->n_files, 2);
    CHECK(m->output.data != m->tok_embd.data);
    CHECK_EQ_INT(m->output.dtype, LK_DTYPE_F32);
    /* tensor order in build_model: embed 0, norm 1, lm_head 2, then 9 per layer */
    CHECK(elem(&m->output, 100) == tval(2, 100));
    CHECK(elem(&m->out_norm, 5) == tval(1, 5));
    CHECK(elem(&m->tok_embd, 777) == lk_f16_to_f32(lk_f32_to_f16(tval(0, 777))));
    CHECK(elem(&m->layers[1].w_up, 33) == lk_f16_to_f32(lk_f32_to_f16(tval(3 + 9 + 7, 33))));
    CHECK(elem(&m->layers[1].wk, 70) == lk_bf16_to_f32(lk_f32_to_bf16(tval(3 + 9 + 2, 70))));
    CHECK_EQ_INT(m->layers[1].w_down.ne[0], SF);
    CHECK_EQ_INT(m->layers[1].w_down.ne[1], SE);
    loki_model_close(m);
}

/* Single-file Qwen2 checkpoint: biases, tied, new rope_parameters form. */
static void test_qwen2(const char *base, const char *tok) {
    char dir[600];
    make_dir(base, "qwen2", tok, dir, sizeof dir);
    write_config(dir, "{\"model_type\":\"qwen2\"," CFG_DIMS ",\"tie_word_embeddings\":true,"
                      "\"rope_parameters\":{\"rope_theta\":1000000.0,\"rope_type\":\"linear\","
                      "\"factor\":2.0}}");
    build_opts o = {.qwen2 = true, .tied = true};
    build_model(dir, &o);
    loki_model *m = NULL;
    loki_error err = {0};
    CHECKF(loki_model_open(dir, NULL, &m, &err) == LOKI_OK, "%.400s", err.msg);
    if (!m) return;
    CHECK(strcmp(m->hp.arch, "qwen2") == 0);
    CHECK(m->hp.rope_theta == 1000000.0f);
    CHECK_EQ_INT(m->hp.rope_scaling, LK_ROPE_SCALING_LINEAR);
    CHECK(m->hp.rope_factor == 2.0f);
    CHECK(m->output.data == m->tok_embd.data);
    /* tensor order: embed 0, norm 1, then 12 per layer; bk is 10th (index 10) */
    CHECK(m->layers[0].bk.data != NULL && m->layers[1].bv.data != NULL);
    CHECK_EQ_INT(m->layers[0].bk.ne[0], SKV * SD);
    CHECK(elem(&m->layers[0].bk, 3) == tval(2 + 10, 3));
    loki_model_close(m);
}

static void test_bad_checkpoints(const char *base, const char *tok) {
    char dir[600];
    const char *cfg = "{\"model_type\":\"llama\"," CFG_DIMS "}";
    make_dir(base, "missing", tok, dir, sizeof dir);
    write_config(dir, cfg);
    build_opts o = {.drop = "model.layers.1.mlp.up_proj.weight"};
    build_model(dir, &o);
    expect_open_fail(dir, LOKI_ERR_FORMAT, "model.layers.1.mlp.up_proj.weight", "missing tensor");

    if (tok) { /* shape checks run after the tokenizer has loaded */
        make_dir(base, "badshape", tok, dir, sizeof dir);
        write_config(dir, cfg);
        build_opts o2 = {.bad_wq = true};
        build_model(dir, &o2);
        expect_open_fail(dir, LOKI_ERR_FORMAT, "model.layers.1.self_attn.q_proj.weight",
                         "inconsistent shape");
    }

    make_dir(base, "layers", tok, dir, sizeof dir);
    write_config(dir, "{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,"
                      "\"num_hidden_layers\":1,\"num_attention_heads\":4,"
                      "\"num_key_value_heads\":2,\"vocab_size\":8192}");
    build_opts o3 = {0};
    build_model(dir, &o3);
    expect_open_fail(dir, LOKI_ERR_FORMAT, dir, "num_hidden_layers");

    make_dir(base, "noconfig", NULL, dir, sizeof dir);
    expect_open_fail(dir, LOKI_ERR_IO, "config.json", "cannot open");

    make_dir(base, "noweights", NULL, dir, sizeof dir);
    write_config(dir, cfg);
    expect_open_fail(dir, LOKI_ERR_IO, dir, "model.safetensors");

    make_dir(base, "badjson", NULL, dir, sizeof dir);
    write_config(dir, "{\"model_type\": \"llama\", \"hidden_size\": 64,,}");
    expect_open_fail(dir, LOKI_ERR_FORMAT, "config.json", "invalid JSON");
}

/* config.json parsing alone: each case -> status and a message keyword. */
static void test_config_errors(void) {
    struct { const char *json; loki_status st; const char *kw; } cases[] = {
        {"{\"model_type\":\"llama\",\"intermediate_size\":128,\"num_hidden_layers\":2,"
         "\"num_attention_heads\":4,\"vocab_size\":8}", LOKI_ERR_FORMAT, "'hidden_size'"},
        {"{\"model_type\":\"gpt_neox\"," CFG_DIMS "}", LOKI_ERR_UNSUPPORTED, "'gpt_neox'"},
        {"{\"architectures\":[\"PhiForCausalLM\"]," CFG_DIMS "}", LOKI_ERR_UNSUPPORTED,
         "PhiForCausalLM"},
        {"{" CFG_DIMS "}", LOKI_ERR_FORMAT, "model_type"},
        {"{\"model_type\":\"llama\"," CFG_DIMS ",\"rope_scaling\":{\"type\":\"yarn\","
         "\"factor\":4}}", LOKI_ERR_UNSUPPORTED, "'yarn'"},
        {"{\"model_type\":\"llama\"," CFG_DIMS ",\"rope_scaling\":{\"type\":\"dynamic\","
         "\"factor\":4}}", LOKI_ERR_UNSUPPORTED, "'dynamic'"},
        {"{\"model_type\":\"llama\"," CFG_DIMS ",\"rope_parameters\":{\"rope_type\":\"longrope\"}}",
         LOKI_ERR_UNSUPPORTED, "'longrope'"},
        {"{\"model_type\":\"llama\"," CFG_DIMS ",\"rope_scaling\":{\"rope_type\":\"llama3\","
         "\"factor\":8}}", LOKI_ERR_FORMAT, "low_freq_factor"},
        {"{\"model_type\":\"llama\"," CFG_DIMS ",\"rope_scaling\":{\"type\":\"linear\"}}",
         LOKI_ERR_FORMAT, "'factor'"},
        {"{\"model_type\":\"llama\",\"hidden_size\":\"64\",\"intermediate_size\":128,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":8}", LOKI_ERR_FORMAT,
         "'hidden_size' must be a positive integer"},
        {"{\"model_type\":\"llama\"," CFG_DIMS ",\"hidden_act\":\"gelu\"}", LOKI_ERR_UNSUPPORTED,
         "gelu"},
        {"[1, 2]", LOKI_ERR_FORMAT, "invalid JSON"},
        {"", LOKI_ERR_FORMAT, "invalid JSON"},
    };
    for (size_t i = 0; i < LK_ARRAY_LEN(cases); i++) {
        lk_hf_config c;
        loki_error err = {0};
        loki_status st = lk_hf_config_parse(cases[i].json, strlen(cases[i].json), "cfg/config.json",
                                            &c, &err);
        CHECKF(st == cases[i].st, "case %zu: status %d: %.400s", i, (int)st, err.msg);
        CHECKF(strstr(err.msg, "cfg/config.json") && strstr(err.msg, cases[i].kw),
               "case %zu: want '%s': %.400s", i, cases[i].kw, err.msg);
    }
    /* defaults and partial rotation */
    const char *ok = "{\"model_type\":\"mistral\",\"hidden_size\":64,\"intermediate_size\":128,"
                     "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":8,"
                     "\"head_dim\":null,\"rope_scaling\":null,\"partial_rotary_factor\":0.5}";
    lk_hf_config c;
    loki_error err = {0};
    CHECK_OK(lk_hf_config_parse(ok, strlen(ok), "config.json", &c, &err));
    CHECK(strcmp(c.hp.arch, "llama") == 0);
    CHECK_EQ_INT(c.hp.n_head_kv, 4);
    CHECK_EQ_INT(c.hp.head_dim, 16);
    CHECK_EQ_INT(c.hp.rope_dim, 8);
    CHECK(c.hp.rope_theta == 10000.0f);
    CHECK(!c.tie_word_embeddings);
    CHECK_EQ_INT(c.hp.rope_scaling, LK_ROPE_SCALING_NONE);
    CHECK_EQ_INT(c.hp.rope_style, LK_ROPE_NEOX);
}

int main(void) {
    char base[] = "/tmp/loki-hf-XXXXXX";
    if (!mkdtemp(base)) test_skip("cannot create a temp dir");
    char *tok = test_shared_path("models/fixture-15m/tokenizer.json");
    bool have_tok = test_file_exists(tok);
    test_config_errors();
    test_fixture();
    if (have_tok) {
        test_sharded_llama3(base, tok);
        test_qwen2(base, tok);
    } else {
        printf("fixture-15m tokenizer.json absent: skipping full synthetic loads\n");
    }
    test_bad_checkpoints(base, have_tok ? tok : NULL);
    free(tok);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", base);
    return test_finish();
}
