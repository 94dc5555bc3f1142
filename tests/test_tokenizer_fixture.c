/*
 * test_tokenizer_fixture.c - the fixture model's tokenizer three ways and the
 * llama2.c tokenizer, plus error paths of the tokenizer API.
 *
 *  - Hugging Face tokenizer.json of models/fixture-15m against every entry of
 *    reference/tokenizer-vectors.json (ids from HF tokenizers, BOS id 0
 *    included: the TemplateProcessing post-processor adds <|endoftext|>).
 *  - The same vectors through the GGUF vocabulary of fixture-15m-q8_0.gguf:
 *    pre "llama-bpe" and no tokenizer.ggml.add_bos_token key, so, as in
 *    llama.cpp, BOS is added by default for that pre-tokenizer; the expected
 *    ids (with BOS) are therefore the same. llama.cpp's llama-bpe also sets
 *    ignore_merges (a word that is a token is emitted whole) while the HF
 *    file says ignore_merges=false; all 47 vectors agree regardless.
 *  - Round trip detokenize(tokenize(s, add_bos)) == s (byte-level BPE is
 *    lossless) for every vector and for all of wikitext2-test.raw.
 *  - Speed: wikitext2-test.raw (1.29 MB) must tokenize in well under 2 s.
 *  - Token count of wikitext2-test.raw with BOS: dense-perplexity.json scores
 *    416,052 tokens, every token but the first of each 4096-token window, so
 *    N - ceil(N / 4096) = 416052, whose only solution is N = 416,154. The
 *    reference read the file in Python text mode, which turns its 2,891 CRLF
 *    line ends into LF (the raw bytes give 419,045 = 416,154 + 2,891 tokens:
 *    each "\r" is one more token), so the count is checked on the LF text.
 *  - llama2.c tok512.bin (run.c encode), ids derived by hand below.
 */
#include "test.h"

#include "core/common.h"
#include "format/gguf.h"
#include "tokenizer/vocab.h"

#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <unistd.h>

static int check_vectors(const lk_vocab *voc, const char *label, const cJSON *vecs) {
    int pass = 0, n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, vecs) {
        const char *text = cJSON_GetObjectItem(it, "text")->valuestring;
        const cJSON *exp = cJSON_GetObjectItem(it, "ids");
        int ne = cJSON_GetArraySize(exp);
        int32_t ids[2048];
        int32_t got = 0;
        loki_error err = {0};
        loki_status st = lk_tokenize(voc, text, strlen(text), true, false, ids, 2048, &got, &err);
        bool same = st == LOKI_OK && got == ne;
        for (int k = 0; same && k < ne; k++) same = ids[k] == cJSON_GetArrayItem(exp, k)->valueint;
        n++;
        pass += same;
        if (!same) {
            fprintf(stderr, "  %s: '%s' (status %d %s): got", label, text, (int)st, err.msg);
            for (int k = 0; k < got && k < 30; k++) fprintf(stderr, " %d", ids[k]);
            fprintf(stderr, "\n   expected");
            for (int k = 0; k < ne && k < 30; k++) fprintf(stderr, " %d", cJSON_GetArrayItem(exp, k)->valueint);
            fprintf(stderr, "\n");
        }
        CHECKF(same, "%s vector '%s'", label, text);
        char buf[8192];
        int64_t m = lk_detokenize(voc, ids, got, false, buf, sizeof buf);
        CHECKF(m == (int64_t)strlen(text) && memcmp(buf, text, strlen(text)) == 0, "%s round trip '%s'", label, text);
    }
    printf("%s: %d/%d vectors\n", label, pass, n);
    return pass;
}

static void test_wikitext(const lk_vocab *voc) {
    char *path = test_shared_path("data/wikitext2-test.raw");
    char *text = NULL;
    size_t len = 0;
    if (lk_read_file(path, &text, &len, NULL)) {
        printf("wikitext2-test.raw absent: speed test skipped\n");
        free(path);
        return;
    }
    int32_t cap = (int32_t)len; /* never more tokens than bytes (+BOS) */
    int32_t *ids = malloc(sizeof(int32_t) * ((size_t)cap + 1));
    int32_t n = 0;
    loki_error err = {0};
    double t0 = lk_time_s();
    loki_status st = lk_tokenize(voc, text, len, true, false, ids, cap + 1, &n, &err);
    double dt = lk_time_s() - t0;
    printf("wikitext2-test.raw: %zu bytes -> %d tokens in %.3f s\n", len, (int)n, dt);
    CHECK_EQ_INT(st, LOKI_OK);
    CHECK(dt < 2.0);
    CHECK_EQ_INT(n, 416154 + 2891); /* raw bytes: one extra token per CR */
    char *back = malloc(len + 1);
    int64_t m = lk_detokenize(voc, ids, n, false, back, (int64_t)len + 1);
    CHECK_EQ_INT(m, (int64_t)len);
    CHECK(m == (int64_t)len && memcmp(back, text, len) == 0);
    free(back);
    size_t k = 0; /* CRLF -> LF, as Python's text mode read it */
    for (size_t i = 0; i < len; i++)
        if (!(text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')) text[k++] = text[i];
    CHECK_OK(lk_tokenize(voc, text, k, true, false, ids, cap + 1, &n, &e_));
    CHECK_EQ_INT(n, 416154);
    free(ids);
    free(text);
    free(path);
}

static void test_fixture(void) {
    char *vpath = test_shared_path("models/fixture-15m/reference/tokenizer-vectors.json");
    char *data = NULL;
    size_t size = 0;
    if (lk_read_file(vpath, &data, &size, NULL)) {
        printf("fixture vectors absent: skipped\n");
        free(vpath);
        return;
    }
    cJSON *vecs = cJSON_ParseWithLength(data, size);
    CHECK(cJSON_IsArray(vecs));

    char *dir = test_shared_path("models/fixture-15m");
    lk_vocab hf;
    loki_error err = {0};
    loki_status st = lk_vocab_from_hf(&hf, dir, &err);
    CHECKF(st == LOKI_OK, "%.400s", err.msg);
    if (st == LOKI_OK) {
        CHECK_EQ_INT(hf.type, LK_VOCAB_BPE);
        CHECK_EQ_INT(hf.n_tokens, 8192);
        CHECK_EQ_INT(hf.bos_id, 0);
        CHECK_EQ_INT(hf.eos_id, 0);
        CHECK(hf.add_bos);
        CHECK(strcmp(hf.pre, "llama-bpe") == 0);
        int pass = check_vectors(&hf, "fixture tokenizer.json", vecs);
        CHECK_EQ_INT(pass, cJSON_GetArraySize(vecs));

        /* special tokens: text unless parse_special; "" unless special */
        const char *s = "<|endoftext|>Hi";
        int32_t ids[64], n = 0;
        CHECK_OK(lk_tokenize(&hf, s, strlen(s), false, true, ids, 64, &n, &e_));
        CHECK(n >= 2 && ids[0] == 0 && ids[1] != 0);
        CHECK_OK(lk_tokenize(&hf, s, strlen(s), false, false, ids, 64, &n, &e_));
        CHECK(n > 2 && ids[0] != 0);
        char buf[64];
        CHECK_EQ_INT(lk_token_to_piece(&hf, -1, 0, false, buf, sizeof buf), 0);
        CHECK_EQ_INT(lk_token_to_piece(&hf, -1, 0, true, buf, sizeof buf), 13);
        CHECK(memcmp(buf, "<|endoftext|>", 13) == 0);
        CHECK_EQ_INT(lk_token_to_piece(&hf, -1, 8192, true, buf, sizeof buf), -1);
        /* a truncated piece still reports the bytes it needs */
        CHECK_EQ_INT(lk_token_to_piece(&hf, -1, 0, true, buf, 4), 13);

        /* LOKI_ERR_RANGE on a small buffer: n_out says how many are needed */
        const char *t = "Hello world, this is a test.";
        n = 0;
        loki_error e2 = {0};
        st = lk_tokenize(&hf, t, strlen(t), true, false, ids, 2, &n, &e2);
        CHECK_EQ_INT(st, LOKI_ERR_RANGE);
        CHECK(n > 2);
        CHECK(strstr(e2.msg, "buffer") != NULL);
        int32_t need = n;
        CHECK_OK(lk_tokenize(&hf, t, strlen(t), true, false, ids, need, &n, &e_));
        CHECK_EQ_INT(n, need);
        /* detokenize into a small buffer: needed size returned, NUL-terminated */
        char small[5];
        int64_t m = lk_detokenize(&hf, ids, n, false, small, sizeof small);
        CHECK_EQ_INT(m, (int64_t)strlen(t));
        CHECK(small[4] == '\0' && memcmp(small, "Hell", 4) == 0);
        CHECK_EQ_INT(lk_detokenize(&hf, (int32_t[]){5, -3}, 2, false, small, sizeof small), -1);

        /* invalid UTF-8 is an argument error naming the offset */
        loki_error e3 = {0};
        st = lk_tokenize(&hf, "ab\xC3\x28", 4, true, false, ids, 64, &n, &e3);
        CHECK_EQ_INT(st, LOKI_ERR_ARG);
        CHECK(strstr(e3.msg, "UTF-8") != NULL && strstr(e3.msg, "offset 2") != NULL);
        st = lk_tokenize(&hf, "\xED\xA0\x80", 3, true, false, ids, 64, &n, &e3); /* surrogate */
        CHECK_EQ_INT(st, LOKI_ERR_ARG);

        test_wikitext(&hf);
        lk_vocab_free(&hf);
    }

    char *gpath = test_shared_path("models/fixture-15m-gguf/fixture-15m-q8_0.gguf");
    lk_gguf g;
    if (test_file_exists(gpath) && lk_gguf_open(gpath, &g, &err) == LOKI_OK) {
        lk_vocab gv;
        st = lk_vocab_from_gguf(&gv, &g, &err);
        lk_gguf_close(&g);
        CHECKF(st == LOKI_OK, "%.400s", err.msg);
        if (st == LOKI_OK) {
            CHECK_EQ_INT(gv.type, LK_VOCAB_BPE);
            CHECK(gv.add_bos); /* llama-bpe default: BOS added */
            CHECK_EQ_INT(gv.bos_id, 0);
            int pass = check_vectors(&gv, "fixture GGUF", vecs);
            CHECK_EQ_INT(pass, cJSON_GetArraySize(vecs));
            lk_vocab_free(&gv);
        }
    }
    cJSON_Delete(vecs);
    free(data);
    free(vpath);
    free(dir);
    free(gpath);
}

/*
 * llama2.c tok512.bin, "Once upon a time", as run.c's encode does it:
 * BOS 1, then the dummy prefix " " and one token per character:
 *   ' ' O n c e ' ' u p o n ' ' a ' ' t i m e
 * then repeatedly the adjacent pair whose joined text scores highest
 * (leftmost on ties) is merged. tok512 scores are -(id - 259) for merged
 * tokens, so the lowest id wins:
 *   ' '+'t' = " t" (259)   ' '+'a' = " a" (261)   'i'+'m' = "im" (288)
 *   'o'+'n' = "on" (289)   ' '+'u' = " u" (318)   ' '+'O' = " O" (319)
 *   " O"+'n' = " On" (321) 'c'+'e' = "ce" (331)   " u"+'p' = " up" (350)
 *   "im"+'e' = "ime" (369) " t"+"ime" = " time" (378)
 *   " On"+"ce" = " Once" (403)  " up"+"on" = " upon" (407)
 * giving [1, 403, 407, 261, 378] = BOS " Once" " upon" " a" " time".
 * '☃' (E2 98 83) is not in the vocabulary: byte fallback ids 0xE2+3 = 229,
 * 0x98+3 = 155, 0x83+3 = 134.
 */
static void test_llama2c(void) {
    char *path = test_shared_path("models/stories260K/tok512.bin");
    if (!test_file_exists(path)) {
        printf("tok512.bin absent: skipped\n");
        free(path);
        return;
    }
    lk_vocab v;
    loki_error err = {0};
    loki_status st = lk_vocab_from_llama2c(&v, path, 512, &err);
    CHECKF(st == LOKI_OK, "%.400s", err.msg);
    if (st) { free(path); return; }
    CHECK_EQ_INT(v.bos_id, 1);
    CHECK_EQ_INT(v.eos_id, 2);
    int32_t ids[64], n = 0;
    const char *s = "Once upon a time";
    CHECK_OK(lk_tokenize(&v, s, strlen(s), true, false, ids, 64, &n, &e_));
    int32_t want[] = {1, 403, 407, 261, 378};
    CHECK_EQ_INT(n, 5);
    CHECK(n == 5 && memcmp(ids, want, sizeof want) == 0);
    char buf[256];
    int64_t m = lk_detokenize(&v, ids, n, false, buf, sizeof buf);
    CHECK(m == (int64_t)strlen(s) && strcmp(buf, s) == 0);
    /* run.c decode: the piece after BOS loses its leading space */
    int32_t pl = lk_token_to_piece(&v, 1, 403, false, buf, sizeof buf);
    CHECK(pl == 4 && memcmp(buf, "Once", 4) == 0);
    pl = lk_token_to_piece(&v, 403, 407, false, buf, sizeof buf);
    CHECK(pl == 5 && memcmp(buf, " upon", 5) == 0);

    const char *u = "h\xC3\xA9llo \xE2\x98\x83"; /* "héllo ☃" */
    CHECK_OK(lk_tokenize(&v, u, strlen(u), true, false, ids, 64, &n, &e_));
    CHECK(n >= 4 && ids[n - 3] == 229 && ids[n - 2] == 155 && ids[n - 1] == 134);
    m = lk_detokenize(&v, ids, n, false, buf, sizeof buf);
    CHECK(m == (int64_t)strlen(u) && strcmp(buf, u) == 0);

    const char *lily = "Lily and Tom went to the park";
    CHECK_OK(lk_tokenize(&v, lily, strlen(lily), true, false, ids, 64, &n, &e_));
    m = lk_detokenize(&v, ids, n, false, buf, sizeof buf);
    CHECK(m == (int64_t)strlen(lily) && strcmp(buf, lily) == 0);

    CHECK_OK(lk_tokenize(&v, "", 0, true, false, ids, 64, &n, &e_)); /* no dummy prefix */
    CHECK(n == 1 && ids[0] == 1);
    lk_vocab_free(&v);

    /* wrong vocabulary size: the file is too short for it */
    st = lk_vocab_from_llama2c(&v, path, 100000, &err);
    CHECK_EQ_INT(st, LOKI_ERR_FORMAT);
    CHECK(strstr(err.msg, "tok512.bin") != NULL);
    free(path);
}

static void write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    fputs(s, f);
    fclose(f);
}

static void test_hf_errors(void) {
    lk_vocab v;
    loki_error err = {0};
    loki_status st = lk_vocab_from_hf(&v, "/nonexistent-loki-dir", &err);
    CHECK_EQ_INT(st, LOKI_ERR_IO);
    CHECK(strstr(err.msg, "tokenizer.json") != NULL);

    char dir[] = "/tmp/loki-tok-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_file(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,");
    st = lk_vocab_from_hf(&v, dir, &err);
    CHECK_EQ_INT(st, LOKI_ERR_FORMAT);
    CHECKF(strstr(err.msg, "invalid JSON") != NULL && strstr(err.msg, "tokenizer.json") != NULL, "%.400s", err.msg);

    write_file(path, "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}");
    st = lk_vocab_from_hf(&v, dir, &err);
    CHECK_EQ_INT(st, LOKI_ERR_UNSUPPORTED);
    CHECKF(strstr(err.msg, "Unigram") != NULL, "%.400s", err.msg);

    write_file(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [5]},"
                     "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}");
    st = lk_vocab_from_hf(&v, dir, &err);
    CHECK_EQ_INT(st, LOKI_ERR_FORMAT);
    CHECKF(strstr(err.msg, "merge 0") != NULL, "%.400s", err.msg);

    /* a minimal valid byte-level file with merges as arrays */
    write_file(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"\\u0120\": 3},"
                     " \"merges\": [[\"a\", \"b\"]]}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"},"
                     " \"added_tokens\": [{\"id\": 4, \"content\": \"<s>\", \"special\": true}]}");
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    write_file(path, "{\"add_bos_token\": true, \"bos_token\": {\"content\": \"<s>\"}}");
    st = lk_vocab_from_hf(&v, dir, &err);
    CHECKF(st == LOKI_OK, "%.400s", err.msg);
    if (st == LOKI_OK) {
        int32_t ids[8], n = 0;
        CHECK_OK(lk_tokenize(&v, "ab a", 4, true, false, ids, 8, &n, &e_));
        CHECK(n == 4 && ids[0] == 4 && ids[1] == 2 && ids[2] == 3 && ids[3] == 0);
        lk_vocab_free(&v);
    }
    unlink(path);

    /* SentencePiece-style tokenizer.json (Llama-2 layout, made up): spaces
     * to U+2581 with a prefix, merges by rank, byte fallback for 'é'.
     * "hi é" -> "▁hi▁é" -> <s> "▁hi"(9) "▁"(5) <0xC3>(3) <0xA9>(4) */
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_file(path,
        "{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": ["
        "{\"type\": \"Prepend\", \"prepend\": \"\u2581\"},"
        "{\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\u2581\"}]},"
        "\"pre_tokenizer\": null,"
        "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": ["
        "{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}]},"
        "\"added_tokens\": [{\"id\": 1, \"content\": \"<s>\", \"special\": true},"
        "{\"id\": 2, \"content\": \"</s>\", \"special\": true}],"
        "\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"unk_token\": \"<unk>\","
        "\"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, \"<0xC3>\": 3, \"<0xA9>\": 4,"
        "\"\u2581\": 5, \"h\": 6, \"i\": 7, \"\u2581h\": 8, \"\u2581hi\": 9},"
        "\"merges\": [\"\u2581 h\", \"\u2581h i\"]}}");
    st = lk_vocab_from_hf(&v, dir, &err);
    CHECKF(st == LOKI_OK, "%.400s", err.msg);
    if (st == LOKI_OK) {
        CHECK(v.type == LK_VOCAB_SPM && v.add_bos && v.add_space_prefix && v.bos_id == 1 && v.unk_id == 0);
        const char *s = "hi \xC3\xA9";
        int32_t ids[16], n = 0;
        CHECK_OK(lk_tokenize(&v, s, strlen(s), true, false, ids, 16, &n, &e_));
        int32_t want[] = {1, 9, 5, 3, 4};
        CHECK(n == 5 && memcmp(ids, want, sizeof want) == 0);
        char buf[32];
        int64_t m = lk_detokenize(&v, ids, n, false, buf, sizeof buf);
        CHECK(m == (int64_t)strlen(s) && strcmp(buf, s) == 0);
        lk_vocab_free(&v);
    }
    unlink(path);
    rmdir(dir);
}

/* A GGUF whose tokenizer model is not llama/gpt2 is refused clearly. */
static void test_gguf_unsupported(void) {
    char path[] = "/tmp/loki-tok-bert-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    lk_gguf_writer *w = NULL;
    loki_error err = {0};
    if (lk_gguf_writer_init(&w, &err) != LOKI_OK) {
        CHECKF(false, "writer: %.400s", err.msg);
        return;
    }
    const char *toks[] = {"[PAD]", "a"};
    lk_gguf_writer_add_str(w, "general.architecture", "bert");
    lk_gguf_writer_add_str(w, "tokenizer.ggml.model", "bert");
    lk_gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, 2);
    loki_status st = lk_gguf_writer_write(w, path, &err);
    lk_gguf_writer_free(w);
    CHECKF(st == LOKI_OK, "%.400s", err.msg);
    lk_gguf g;
    if (st == LOKI_OK && lk_gguf_open(path, &g, &err) == LOKI_OK) {
        lk_vocab v;
        st = lk_vocab_from_gguf(&v, &g, &err);
        CHECK_EQ_INT(st, LOKI_ERR_UNSUPPORTED);
        CHECKF(strstr(err.msg, "bert") != NULL, "%.400s", err.msg);
        lk_gguf_close(&g);
    }
    unlink(path);
}

int main(void) {
    char *p = test_shared_or_skip("models/fixture-15m/tokenizer.json");
    free(p);
    test_fixture();
    test_llama2c();
    test_hf_errors();
    test_gguf_unsupported();
    return test_finish();
}
