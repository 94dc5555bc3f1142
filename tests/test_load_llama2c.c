/*
 * test_load_llama2c.c - llama2.c checkpoint loader: stories260K + tok512,
 * and truncated / padded / implausible / tokenizer-less variants.
 */
#include "test.h"

#include "format/llama2c.h"
#include "model/model.h"

#include <unistd.h>


static void expect_fail(const char *path, const char *tok, loki_status want, const char *keyword) {
    loki_model *m = NULL;
    loki_error err = {0};
    loki_model_params mp = {.tokenizer_path = tok};
    loki_status st = loki_model_open(path, &mp, &m, &err);
    CHECKF(st == want, "%s: status %d, want %d: %.400s", path, (int)st, (int)want, err.msg);
    CHECKF(strstr(err.msg, path) != NULL, "names the file: %.400s", err.msg);
    CHECKF(strstr(err.msg, keyword) != NULL, "has '%s': %.400s", keyword, err.msg);
    CHECK(m == NULL);
}

/* float i of the checkpoint `d` (header of 7 ints first) */
static float fat(const uint8_t *d, size_t byte_off) {
    float v;
    memcpy(&v, d + byte_off, 4);
    return v;
}

static void check_stories(loki_model *m, const uint8_t *d) {
    const lk_hparams *hp = &m->hp;
    CHECK(strcmp(hp->arch, "llama") == 0 && strcmp(m->format, "llama2c") == 0);
    CHECK_EQ_INT(hp->n_embd, 64);
    CHECK_EQ_INT(hp->n_layer, 5);
    CHECK_EQ_INT(hp->n_head, 8);
    CHECK_EQ_INT(hp->n_head_kv, 4);
    CHECK_EQ_INT(hp->head_dim, 8);
    CHECK_EQ_INT(hp->rope_dim, 8);
    CHECK_EQ_INT(hp->n_vocab, 512);
    CHECK_EQ_INT(hp->n_ctx_train, 512);
    CHECK_EQ_INT(hp->rope_style, LK_ROPE_NORM);
    CHECK(hp->rope_theta == 10000.0f && hp->rms_eps == 1e-5f);
    CHECK(m->output.data == m->tok_embd.data);
    int32_t ff;
    memcpy(&ff, d + 4, 4);
    CHECK_EQ_INT(hp->n_ff, ff);
    /* mapped in place: token_embedding starts right after the header */
    CHECK((const uint8_t *)m->tok_embd.data == m->files[0].data + 28);
    CHECK(fat(d, 28) == ((const float *)m->tok_embd.data)[0]);
    /* layer 4's w2 (down): offset computed independently */
    size_t D = 64, H = (size_t)ff, L = 5, V = 512, KV = 32;
    size_t off = 28 + 4 * (V * D + L * D + L * D * D + 2 * L * KV * D + L * D * D + L * D +
                           L * H * D + 4 * D * H);
    float w2;
    memcpy(&w2, m->layers[4].w_down.data, 4);
    CHECK(w2 == fat(d, off));
    CHECK_EQ_INT(m->layers[4].w_down.ne[0], H);
    CHECK_EQ_INT(m->layers[4].w_down.ne[1], D);
    CHECK_EQ_INT(m->layers[2].wk.ne[1], KV);
    loki_model_info info;
    loki_model_get_info(m, &info);
    int64_t np = (int64_t)(V * D + D + L * (2 * D + 2 * D * D + 2 * KV * D + 3 * D * H));
    CHECK_EQ_INT(info.n_params, np);
    CHECK_EQ_INT(info.weight_bytes, 4 * np);
}

int main(void) {
    char *bin = test_shared_or_skip("models/stories260K/stories260K.bin");
    char *tok = test_shared_or_skip("models/stories260K/tok512.bin");
    char dir[] = "/tmp/loki-l2c-XXXXXX";
    if (!mkdtemp(dir)) test_skip("cannot create a temp dir");
    size_t n = 0;
    uint8_t *d = test_read_all(bin, &n);
    CHECK(d != NULL && n == 1056540);
    char p[600], t[600];

    /* explicit tokenizer path, and found beside the model (tok512.bin) */
    loki_model *m = NULL;
    loki_error err = {0};
    loki_model_params mp = {.tokenizer_path = tok};
    CHECKF(loki_model_open(bin, &mp, &m, &err) == LOKI_OK, "%.400s", err.msg);
    if (m) {
        check_stories(m, d);
        loki_model_close(m);
    }
    m = NULL;
    CHECKF(loki_model_open(bin, NULL, &m, &err) == LOKI_OK, "%.400s", err.msg);
    loki_model_close(m);

    /* truncated at several points, and with trailing bytes */
    size_t cuts[] = {27, 28, 1000, n / 2, n - 4};
    for (size_t i = 0; i < LK_ARRAY_LEN(cuts); i++) {
        snprintf(p, sizeof p, "%s/trunc-%zu.bin", dir, cuts[i]);
        test_write_all(p, d, cuts[i]);
        expect_fail(p, tok, LOKI_ERR_FORMAT,
                    cuts[i] < 28 ? "not a GGUF file, HF directory or llama2.c checkpoint"
                                 : "truncated");
    }
    snprintf(p, sizeof p, "%s/long.bin", dir);
    memset(d + n, 0, 8);
    test_write_all(p, d, n + 8);
    expect_fail(p, tok, LOKI_ERR_FORMAT, "trailing bytes");

    /* inconsistent header (heads not dividing dim) is not recognised at all */
    uint8_t *c = malloc(n);
    memcpy(c, d, n);
    int32_t heads = 7;
    memcpy(c + 12, &heads, 4);
    snprintf(p, sizeof p, "%s/heads.bin", dir);
    test_write_all(p, c, n);
    expect_fail(p, tok, LOKI_ERR_FORMAT, "not a GGUF file, HF directory or llama2.c checkpoint");
    CHECK(!lk_l2c_plausible(c, n));
    CHECK(lk_l2c_plausible(d, n));
    free(c);

    /* text file */
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    test_write_all(p, "hello, this is not a model at all\n", 34);
    expect_fail(p, NULL, LOKI_ERR_FORMAT, "not a GGUF file, HF directory or llama2.c checkpoint");

    /* no tokenizer beside it */
    snprintf(p, sizeof p, "%s/alone.bin", dir);
    test_write_all(p, d, n);
    expect_fail(p, NULL, LOKI_ERR_IO, "tokenizer");
    /* tokenizer.bin beside it is picked up */
    snprintf(t, sizeof t, "%s/tokenizer.bin", dir);
    size_t tn = 0;
    uint8_t *td = test_read_all(tok, &tn);
    test_write_all(t, td, tn);
    free(td);
    m = NULL;
    CHECKF(loki_model_open(p, NULL, &m, &err) == LOKI_OK, "%.400s", err.msg);
    if (m) CHECK(m->vocab.n_tokens == 512);
    loki_model_close(m);

    /* explicit tokenizer that does not exist */
    snprintf(t, sizeof t, "%s/none/tok.bin", dir);
    m = NULL;
    loki_model_params bad = {.tokenizer_path = t};
    CHECK(loki_model_open(bin, &bad, &m, &err) != LOKI_OK && m == NULL);
    CHECKF(strstr(err.msg, t) != NULL, "%.400s", err.msg);

    free(d);
    free(bin);
    free(tok);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
    return test_finish();
}
