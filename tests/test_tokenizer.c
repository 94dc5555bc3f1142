/*
 * test_tokenizer.c - the exact tokenizers against llama.cpp's tokenizer test
 * vectors (../shared/tokenizers/ggml-vocab-*.gguf.inp/.out, produced by the
 * original Hugging Face tokenizers), plus round trips and error paths.
 *
 * Vector format (llama.cpp tests/test-tokenizer-0.cpp): the .inp file is the
 * test strings, each followed by "\n__ggml_vocab_test__\n"; the .out file has
 * one line of space-separated ids per string (no BOS). llama.cpp tokenizes
 * them with add_special = false, parse_special = false; so do we.
 *
 * Results (all must pass):
 *   llama-spm       46/46     phi-3       46/46
 *   gpt-2           46/46     falcon      46/46
 *   starcoder       46/46     refact      46/46
 *   mpt             46/46     deepseek-coder 46/46
 * (gpt-neox has no vectors; it is only loaded.)
 */
#include "test.h"

#include "core/common.h"
#include "format/gguf.h"
#include "tokenizer/vocab.h"

typedef struct vec {
    char *text;
    size_t len;
    int32_t *ids;
    int n_ids;
} vec;

/* Parse .inp/.out into vecs; returns the count (0 on a format problem). */
static int read_vectors(const char *inp_path, const char *out_path, vec **out) {
    char *inp = NULL, *outs = NULL;
    size_t ni = 0, no = 0;
    if (lk_read_file(inp_path, &inp, &ni, NULL) || lk_read_file(out_path, &outs, &no, NULL)) {
        free(inp);
        free(outs);
        return 0;
    }
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t sl = strlen(sep);
    int n = 0, cap = 64;
    vec *v = calloc((size_t)cap, sizeof *v);
    size_t pos = 0;
    while (pos < ni) {
        const char *m = memmem(inp + pos, ni - pos, sep, sl);
        size_t end = m ? (size_t)(m - inp) : ni;
        if (n == cap) v = realloc(v, (size_t)(cap *= 2) * sizeof *v);
        memset(&v[n], 0, sizeof v[n]);
        v[n].len = end - pos;
        v[n].text = malloc(v[n].len + 1);
        memcpy(v[n].text, inp + pos, v[n].len);
        v[n].text[v[n].len] = '\0';
        n++;
        if (!m) break;
        pos = end + sl;
    }
    /* .out: one line per string */
    int line = 0;
    char *p = outs;
    while (p < outs + no && line < n) {
        char *nl = memchr(p, '\n', (size_t)(outs + no - p));
        char *e = nl ? nl : outs + no;
        int cnt = 0;
        v[line].ids = malloc(sizeof(int32_t) * (size_t)(e - p + 1));
        char *q = p;
        while (q < e) {
            while (q < e && *q == ' ') q++;
            if (q >= e) break;
            v[line].ids[cnt++] = (int32_t)strtol(q, &q, 10);
        }
        v[line].n_ids = cnt;
        line++;
        if (!nl) break;
        p = nl + 1;
    }
    free(inp);
    free(outs);
    if (line != n) {
        fprintf(stderr, "%s: %d strings but %d id lines\n", inp_path, n, line);
        for (int i = 0; i < n; i++) { free(v[i].text); free(v[i].ids); }
        free(v);
        return 0;
    }
    *out = v;
    return n;
}

static void free_vectors(vec *v, int n) {
    for (int i = 0; i < n; i++) {
        free(v[i].text);
        free(v[i].ids);
    }
    free(v);
}

static bool load_gguf_vocab(const char *path, lk_vocab *voc) {
    lk_gguf g;
    loki_error err = {0};
    if (lk_gguf_open(path, &g, &err)) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        return false;
    }
    loki_status st = lk_vocab_from_gguf(voc, &g, &err);
    lk_gguf_close(&g);
    if (st) fprintf(stderr, "%s: %s\n", path, err.msg);
    return st == LOKI_OK;
}

/* Round trip detokenize(tokenize(s, add_bos=true)) == s. */
static bool round_trip(const lk_vocab *voc, const char *s, size_t len) {
    int32_t ids[4096];
    int32_t n = 0;
    loki_error err = {0};
    if (lk_tokenize(voc, s, len, true, false, ids, 4096, &n, &err)) return false;
    char buf[16384];
    int64_t m = lk_detokenize(voc, ids, n, false, buf, sizeof buf);
    return m == (int64_t)len && memcmp(buf, s, len) == 0;
}

static void run_vocab(const char *name, bool spm) {
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizers/ggml-vocab-%s.gguf", name);
    char *path = test_shared_path(rel);
    if (!test_file_exists(path)) {
        printf("vocab %-16s skipped (absent)\n", name);
        free(path);
        return;
    }
    lk_vocab voc;
    bool ok = load_gguf_vocab(path, &voc);
    CHECKF(ok, "%s loads", name);
    if (!ok) { free(path); return; }
    char inp[1024], outp[1024];
    snprintf(inp, sizeof inp, "%s.inp", path);
    snprintf(outp, sizeof outp, "%s.out", path);
    vec *v = NULL;
    int n = test_file_exists(inp) ? read_vectors(inp, outp, &v) : 0;
    int pass = 0, rt_pass = 0, rt_n = 0;
    for (int i = 0; i < n; i++) {
        int32_t ids[4096];
        int32_t got = 0;
        loki_error err = {0};
        loki_status st = lk_tokenize(&voc, v[i].text, v[i].len, false, false, ids, 4096, &got, &err);
        bool same = st == LOKI_OK && got == v[i].n_ids &&
                    memcmp(ids, v[i].ids, sizeof(int32_t) * (size_t)got) == 0;
        pass += same;
        if (!same) {
            fprintf(stderr, "  %s vector %d '%s': got", name, i, v[i].text);
            for (int k = 0; k < got && k < 40; k++) fprintf(stderr, " %d", ids[k]);
            fprintf(stderr, "\n   expected");
            for (int k = 0; k < v[i].n_ids && k < 40; k++) fprintf(stderr, " %d", v[i].ids[k]);
            fprintf(stderr, "\n");
        }
        /* byte-level BPE is lossless for every string; SPM for every string
         * too, since exactly one prefix space is added and stripped */
        (void)spm;
        rt_n++;
        bool rt = round_trip(&voc, v[i].text, v[i].len);
        rt_pass += rt;
        CHECKF(rt, "%s round trip of vector %d '%s'", name, i, v[i].text);
    }
    printf("vocab %-16s %d/%d vectors, %d/%d round trips\n", name, pass, n, rt_pass, rt_n);
    if (n > 0) CHECKF(pass == n, "%s: %d of %d vectors match", name, pass, n);
    free_vectors(v, n);
    lk_vocab_free(&voc);
    free(path);
}

/* SPM with parse_special: "<s>" becomes BOS and, as in llama.cpp, the text
 * after a special token gets the space prefix again; detokenizing with
 * special=true drops exactly that space, so the text comes back. */
static void spm_special(void) {
    char *path = test_shared_path("tokenizers/ggml-vocab-llama-spm.gguf");
    lk_vocab voc;
    if (!test_file_exists(path) || !load_gguf_vocab(path, &voc)) {
        free(path);
        return;
    }
    CHECK(voc.add_bos && voc.add_space_prefix);
    CHECK_EQ_INT(voc.bos_id, 1);
    const char *s = "Hello<s>world";
    int32_t ids[32], n = 0, n2 = 0;
    CHECK_OK(lk_tokenize(&voc, s, strlen(s), true, true, ids, 32, &n, &e_));
    int bos_at = -1;
    for (int i = 1; i < n; i++)
        if (ids[i] == 1) bos_at = i;
    CHECK(n >= 4 && ids[0] == 1 && bos_at > 1);
    char buf[64];
    int64_t m = lk_detokenize(&voc, ids, n, true, buf, sizeof buf);
    CHECK(m == 16 && strcmp(buf, "<s>Hello<s>world") == 0);
    /* without parse_special "<s>" is plain text: no second BOS */
    CHECK_OK(lk_tokenize(&voc, s, strlen(s), true, false, ids, 32, &n2, &e_));
    int n_bos = 0;
    for (int i = 0; i < n2; i++) n_bos += ids[i] == 1;
    CHECK_EQ_INT(n_bos, 1);
    m = lk_detokenize(&voc, ids, n2, false, buf, sizeof buf);
    CHECK(m == (int64_t)strlen(s) && strcmp(buf, s) == 0);
    /* token_to_piece: "▁Hello" after BOS loses its space, elsewhere keeps it */
    int32_t hello = ids[1];
    int32_t pl = lk_token_to_piece(&voc, 1, hello, false, buf, sizeof buf);
    CHECK(pl == 5 && memcmp(buf, "Hello", 5) == 0);
    pl = lk_token_to_piece(&voc, 100, hello, false, buf, sizeof buf);
    CHECK(pl == 6 && memcmp(buf, " Hello", 6) == 0);
    /* control tokens: "" unless special */
    CHECK_EQ_INT(lk_token_to_piece(&voc, -1, 1, false, buf, sizeof buf), 0);
    CHECK_EQ_INT(lk_token_to_piece(&voc, -1, 1, true, buf, sizeof buf), 3);
    lk_vocab_free(&voc);
    free(path);

    /* the Llama-2 vocabulary inside a model GGUF without add_bos/pre keys:
     * llama.cpp's SPM defaults (BOS added, space prefix) apply */
    path = test_shared_path("models/tiny-random/llama-2-tiny-random.gguf");
    if (test_file_exists(path) && load_gguf_vocab(path, &voc)) {
        CHECK(voc.type == LK_VOCAB_SPM && voc.add_bos && voc.add_space_prefix);
        CHECK_OK(lk_tokenize(&voc, "Hello world", 11, true, false, ids, 32, &n, &e_));
        CHECK(n == 3 && ids[0] == 1);
        lk_vocab_free(&voc);
    }
    free(path);
}

int main(void) {
    char *dir = test_shared_or_skip("tokenizers/ggml-vocab-llama-spm.gguf");
    free(dir);
    run_vocab("llama-spm", true);
    run_vocab("phi-3", true);
    run_vocab("gpt-2", false);
    run_vocab("falcon", false);
    run_vocab("starcoder", false);
    run_vocab("refact", false);
    run_vocab("mpt", false);
    run_vocab("deepseek-coder", false);
    run_vocab("gpt-neox", false);
    spm_special();
    return test_finish();
}
