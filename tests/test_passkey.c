/*
 * test_passkey.c - prompt construction of the retrieval evaluations
 * (src/eval/passkey.c) on the fixture model's tokenizer and a book:
 *
 *  - lk_passkey_parse: the first maximal run of exactly 5 digits.
 *  - passkey prompts for several lengths and depths: the ids are BOS + the
 *    tokenization of the text; the length is the requested one within 2
 *    tokens; the key sentence occurs exactly once, the question ends the
 *    text, the intro starts it; the key sits at the requested depth (checked
 *    independently by tokenizing the text before it) within 0.05; the same
 *    rng state gives the same prompt; other seeds give other keys/offsets.
 *  - repeat sequences: exact length, the last `span` tokens equal the span at
 *    the requested depth of the window, which is a slice of the book.
 *  - errors: a length below the minimum, a depth outside [0, 1], a book too
 *    short, a bad span.
 * Prompts are checked with two tokenizers: fixture-15m's byte-level BPE and
 * the Llama-2 SentencePiece vocabulary of tiny-random (random weights, used
 * for its tokenizer only).
 */
#include "test.h"

#include "core/common.h"
#include "eval/eval.h"
#include "eval/passkey.h"

/* Occurrences of needle in hay. */
static int count_occ(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++) n++;
    return n;
}

static void test_parse(void) {
    bool fin = true;
    CHECK_EQ_INT(lk_passkey_parse(" 12345.", 7, &fin), 12345);
    CHECK(fin);
    CHECK_EQ_INT(lk_passkey_parse("1234", 4, &fin), -1);
    CHECK(!fin);
    CHECK_EQ_INT(lk_passkey_parse("123456", 6, NULL), -1);
    CHECK_EQ_INT(lk_passkey_parse("7 and 12345", 11, &fin), 12345);
    CHECK(!fin); /* the run reaches the end: more digits could follow */
    CHECK_EQ_INT(lk_passkey_parse(" 54321 and 12345", 16, NULL), 54321);
    CHECK_EQ_INT(lk_passkey_parse("", 0, NULL), -1);
    CHECK_EQ_INT(lk_passkey_parse("ab 1234 5 00042x", 16, NULL), 42);
    CHECK_EQ_INT(lk_passkey_parse(" 12345", 3, NULL), -1); /* len bounds the scan */
}

static void test_rng(void) {
    lk_rng a = lk_rng_derive(1, 1024, 500000, 0), b = lk_rng_derive(1, 1024, 500000, 0);
    lk_rng c = lk_rng_derive(1, 1024, 500000, 1), d = lk_rng_derive(2, 1024, 500000, 0);
    uint64_t x = lk_rng_next(&a);
    CHECK(x == lk_rng_next(&b));
    CHECK(x != lk_rng_next(&c));
    CHECK(x != lk_rng_next(&d));
    int hist[10] = {0};
    for (int i = 0; i < 10000; i++) hist[lk_rng_below(&a, 10)]++;
    for (int i = 0; i < 10; i++) CHECKF(hist[i] > 850 && hist[i] < 1150, "bucket %d: %d", i, hist[i]);
    CHECK_EQ_INT(lk_rng_below(&a, 1), 0);
}

static void test_passkey_prompts(const lk_haystack *h, const loki_model *m) {
    const int32_t lengths[] = {128, 300, 1024, 2048};
    const double depths[] = {0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0};
    int32_t *ids = malloc(sizeof(int32_t) * 65536);
    int worst_len = 0, exact = 0, built = 0;
    double worst_depth = 0;
    for (size_t li = 0; li < LK_ARRAY_LEN(lengths); li++)
        for (size_t di = 0; di < LK_ARRAY_LEN(depths); di++)
            for (int t = 0; t < 3; t++) {
                loki_error err = {0};
                lk_rng rng = lk_rng_derive(7, (uint64_t)lengths[li], di, (uint64_t)t);
                lk_passkey_prompt p;
                loki_status st = lk_passkey_build(h, lengths[li], depths[di], &rng, &p, &err);
                CHECKF(st == LOKI_OK, "build %d %g: %s", lengths[li], depths[di], err.msg);
                if (st) continue;
                /* ids == BOS + tokens of the text */
                int32_t n = 0;
                CHECK_OK(loki_tokenize(m, p.text, p.text_len, true, false, ids, 65536, &n, &e_));
                bool same = n == p.n_tokens;
                for (int32_t i = 0; same && i < n; i++) same = ids[i] == p.ids[i];
                CHECKF(same, "ids of the text (%d vs %d tokens)", n, p.n_tokens);
                int dl = abs(p.n_tokens - lengths[li]);
                worst_len = LK_MAX(worst_len, dl);
                exact += dl == 0;
                built++;
                CHECKF(dl <= 2, "length %d depth %g: %d tokens", lengths[li], depths[di], p.n_tokens);
                /* structure and the key */
                char sentence[128], digits[8];
                snprintf(sentence, sizeof sentence, LK_PASSKEY_KEY_FMT, p.key, p.key);
                snprintf(digits, sizeof digits, "%05d", p.key);
                CHECK(p.key >= 10000 && p.key <= 99999);
                CHECKF(count_occ(p.text, sentence) == 1, "key sentence once");
                CHECKF(count_occ(p.text, digits) == 2, "key digits twice");
                CHECK(count_occ(p.text, "pass key") == 4); /* 2 in the key, 2 in the question */
                CHECK(strncmp(p.text, LK_PASSKEY_INTRO, strlen(LK_PASSKEY_INTRO)) == 0);
                size_t ql = strlen(LK_PASSKEY_QUESTION);
                CHECK(p.text_len > ql && strcmp(p.text + p.text_len - ql, LK_PASSKEY_QUESTION) == 0);
                CHECK(strstr(p.text, sentence) == p.text + p.key_off);
                /* depth, independently: haystack tokens before the key */
                int32_t n_intro = 0, n_before = 0, n_empty = 0;
                size_t il = strlen(LK_PASSKEY_INTRO);
                CHECK_OK(loki_tokenize(m, LK_PASSKEY_INTRO, il - 2, true, false, ids, 65536, &n_intro, &e_));
                size_t kb = p.key_off;
                while (kb > 0 && (p.text[kb - 1] == ' ' || p.text[kb - 1] == '\n')) kb--;
                CHECK_OK(loki_tokenize(m, p.text, kb, true, false, ids, 65536, &n_before, &e_));
                char empty[512];
                int el = snprintf(empty, sizeof empty, "%s%s%s", LK_PASSKEY_INTRO, sentence, LK_PASSKEY_QUESTION);
                CHECK_OK(loki_tokenize(m, empty, (size_t)el, true, false, ids, 65536, &n_empty, &e_));
                double dep = (double)(n_before - n_intro) / (double)(p.n_tokens - n_empty);
                double dd = fabs(dep - depths[di]);
                if (lengths[li] >= 1024) worst_depth = fmax(worst_depth, dd);
                CHECKF(dd <= (lengths[li] >= 1024 ? 0.03 : 0.15), "length %d depth %g: actual %.4f",
                       lengths[li], depths[di], dep);
                CHECKF(fabs(p.depth - dep) <= 0.02 + 3.0 / p.hay_tokens, "reported depth %.4f vs %.4f", p.depth, dep);
                if (depths[di] == 0.0) CHECK(p.key_off == il);
                if (depths[di] == 1.0) CHECK(p.key_off + strlen(sentence) + ql == p.text_len);
                /* the haystack part is book text */
                CHECK(p.hay_end <= h->len && p.hay_begin < p.hay_end);
                CHECK(memcmp(p.text + il, h->text + p.hay_begin, LK_MIN(p.key_off - il, (size_t)20)) == 0 ||
                      depths[di] == 0.0);
                /* the same rng state reproduces the prompt */
                lk_rng again = lk_rng_derive(7, (uint64_t)lengths[li], di, (uint64_t)t);
                lk_passkey_prompt q;
                CHECK_OK(lk_passkey_build(h, lengths[li], depths[di], &again, &q, &e_));
                CHECK(q.text && q.text_len == p.text_len && memcmp(q.text, p.text, p.text_len) == 0);
                lk_passkey_prompt_free(&q);
                lk_passkey_prompt_free(&p);
            }
    printf("passkey prompts: %d of %d exactly as long as requested, worst length error %d tokens, "
           "worst depth error %.4f (length >= 1024)\n", exact, built, worst_len, worst_depth);
    /* different trials differ */
    lk_rng r1 = lk_rng_derive(1, 1024, 0, 0), r2 = lk_rng_derive(1, 1024, 0, 1);
    lk_passkey_prompt a, b;
    CHECK_OK(lk_passkey_build(h, 1024, 0.5, &r1, &a, &e_));
    CHECK_OK(lk_passkey_build(h, 1024, 0.5, &r2, &b, &e_));
    CHECK(a.key != b.key || a.hay_begin != b.hay_begin);
    lk_passkey_prompt_free(&a);
    lk_passkey_prompt_free(&b);
    free(ids);
}

static void test_repeat(const lk_haystack *h) {
    const double depths[] = {0.0, 0.5, 1.0};
    for (size_t di = 0; di < LK_ARRAY_LEN(depths); di++) {
        lk_rng rng = lk_rng_derive(3, 1024, di, 0);
        lk_repeat_seq s;
        loki_error err = {0};
        loki_status st = lk_repeat_build(h, 1024, depths[di], 48, &rng, &s, &err);
        CHECKF(st == LOKI_OK, "%s", err.msg);
        if (st) continue;
        int32_t bos = h->bos >= 0, window = 1024 - 48 - bos;
        CHECK_EQ_INT(s.n, 1024);
        CHECK_EQ_INT(s.rep_start, 1024 - 48);
        CHECK(bos == 0 || s.ids[0] == h->bos);
        CHECK(memcmp(s.ids + bos, h->ids + s.book_offset, sizeof(int32_t) * (size_t)window) == 0);
        CHECK(memcmp(s.ids + s.rep_start, s.ids + s.span_start, sizeof(int32_t) * 48) == 0);
        int32_t want = bos + (int32_t)lround(depths[di] * (window - 48));
        CHECK_EQ_INT(s.span_start, want);
        if (depths[di] == 1.0) CHECK_EQ_INT(s.span_start + 48, s.rep_start);
        lk_repeat_seq_free(&s);
    }
}

static void test_errors(const lk_haystack *h, const loki_model *m) {
    lk_rng rng = lk_rng_derive(1, 0, 0, 0);
    lk_passkey_prompt p;
    lk_repeat_seq s;
    loki_error err = {0};
    CHECK(lk_passkey_build(h, 64, 0.5, &rng, &p, &err) == LOKI_ERR_ARG && strstr(err.msg, "--lengths"));
    CHECK(lk_passkey_build(h, 1024, 1.5, &rng, &p, &err) == LOKI_ERR_ARG && strstr(err.msg, "--depths"));
    CHECK(lk_passkey_build(h, 1024, -0.1, &rng, &p, &err) == LOKI_ERR_ARG);
    CHECK(lk_repeat_build(h, 1024, 0.5, 1, &rng, &s, &err) == LOKI_ERR_ARG && strstr(err.msg, "--span"));
    CHECK(lk_repeat_build(h, 128, 0.5, 64, &rng, &s, &err) == LOKI_ERR_ARG);
    /* a short book: 40 sentences */
    char text[4096] = "";
    for (int i = 0; i < 40; i++) strcat(text, "The whale swam on. ");
    lk_haystack small;
    CHECK_OK(lk_haystack_init(m, "small.txt", text, strlen(text), &small, &e_));
    CHECK(lk_passkey_build(&small, 1024, 0.5, &rng, &p, &err) == LOKI_ERR_RANGE && strstr(err.msg, "--haystack"));
    CHECK(lk_repeat_build(&small, 1024, 0.5, 48, &rng, &s, &err) == LOKI_ERR_RANGE && strstr(err.msg, "--haystack"));
    CHECKF(lk_passkey_build(&small, 128, 0.5, &rng, &p, &err) == LOKI_OK, "%s", err.msg);
    lk_passkey_prompt_free(&p);
    lk_haystack_free(&small);
    CHECK(lk_haystack_init(m, "empty.txt", "", 0, &small, &err) == LOKI_ERR_ARG && strstr(err.msg, "empty.txt"));
    CHECK(lk_haystack_init(m, "bad.txt", "ab\xff", 3, &small, &err) == LOKI_ERR_ARG && strstr(err.msg, "UTF-8"));
}

/* Prompt and sequence checks with one model's tokenizer over the book. */
static void test_model(const char *rel, const char *text, size_t len, bool errors) {
    char *path = test_shared_path(rel);
    if (!test_file_exists(path)) {
        printf("%s absent: skipped\n", path);
        free(path);
        return;
    }
    loki_model *m = NULL;
    loki_error err = {0};
    CHECKF(loki_model_open(path, NULL, &m, &err) == LOKI_OK, "open %s: %s", path, err.msg);
    if (!m) {
        free(path);
        return;
    }
    lk_haystack h;
    double t0 = lk_time_s();
    CHECK_OK(lk_haystack_init(m, "moby_dick.txt", text, len, &h, &e_));
    printf("%s: haystack %zu bytes, %d tokens, BOS %d (%.2f s)\n", rel, len, h.n_ids, h.bos, lk_time_s() - t0);
    CHECK(h.n_ids > 100000);
    t0 = lk_time_s();
    test_passkey_prompts(&h, m);
    printf("%s: passkey prompts built and checked in %.2f s\n", rel, lk_time_s() - t0);
    test_repeat(&h);
    if (errors) test_errors(&h, m);
    lk_haystack_free(&h);
    loki_model_close(m);
    free(path);
}

int main(void) {
    test_parse();
    test_rng();
    char *book_path = test_shared_or_skip("data/books/moby_dick.txt");
    size_t len = 0;
    char *text = (char *)test_read_all(book_path, &len);
    CHECK(text != NULL);
    len = lk_text_universal_newlines(text, len);
    char *fixture = test_shared_or_skip("models/fixture-15m");
    /* byte-level BPE (Llama-3 style pre-tokenizer), BOS added */
    test_model("models/fixture-15m", text, len, true);
    /* the Llama-2 SentencePiece vocabulary (random weights: tokenizer only) */
    test_model("models/tiny-random/llama-2-tiny-random.gguf", text, len, false);
    free(fixture);
    free(text);
    free(book_path);
    return test_finish();
}
