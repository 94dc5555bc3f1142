/*
 * passkey.c - passkey retrieval and repeated-span evaluations (passkey.h,
 * docs/EVAL.md). Prompts are built as text and tokenized whole, so the model
 * sees the canonical tokenization of what it reads; the haystack length is
 * found by measuring token counts and adjusting at word boundaries.
 */
#include "eval/passkey.h"
#include "core/strbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ rng */

/* splitmix64 finaliser: a bijective 64-bit mix. */
static uint64_t splitmix_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

lk_rng lk_rng_derive(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    const uint64_t g = 0x9e3779b97f4a7c15ULL;
    uint64_t x = splitmix_mix(seed + g);
    x = splitmix_mix(x ^ (a + 1 * g));
    x = splitmix_mix(x ^ (b + 2 * g));
    x = splitmix_mix(x ^ (c + 3 * g));
    lk_rng r = {x};
    return r;
}

uint64_t lk_rng_next(lk_rng *r) {
    r->state += 0x9e3779b97f4a7c15ULL;
    return splitmix_mix(r->state);
}

uint64_t lk_rng_below(lk_rng *r, uint64_t n) {
    if (n <= 1) return 0;
    /* rejection sampling: uniform without modulo bias */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = lk_rng_next(r); while (x >= limit);
    return x % n;
}

/* ------------------------------------------------------- token scratch */

/* Growable id buffer for counting tokens. */
typedef struct id_buf {
    int32_t *p;
    int32_t cap;
} id_buf;

/* Tokenize text[0, len) without BOS into b (grown as needed); *n = count. */
static loki_status tokenize_into(const loki_model *m, const char *text, size_t len, id_buf *b, int32_t *n,
                                 loki_error *err) {
    for (int attempt = 0; attempt < 2; attempt++) {
        loki_status st = loki_tokenize(m, text, len, false, false, b->p, b->cap, n, err);
        if (st == LOKI_OK) return LOKI_OK;
        if (st != LOKI_ERR_RANGE || *n <= b->cap) return st;
        int32_t cap = *n + 64;
        int32_t *p = realloc(b->p, sizeof(int32_t) * (size_t)cap);
        if (!p) return lk_fail(err, LOKI_ERR_NOMEM, "out of memory (%d token ids)", cap);
        b->p = p;
        b->cap = cap;
    }
    return lk_fail(err, LOKI_ERR_RANGE, "tokenize: token count changed between calls");
}

/* ----------------------------------------------------------- haystack */

loki_status lk_haystack_init(const loki_model *model, const char *name, const char *text, size_t len,
                             lk_haystack *h, loki_error *err) {
    memset(h, 0, sizeof *h);
    h->bos = h->eos = -1;
    if (len == 0) return lk_fail(err, LOKI_ERR_ARG, "%s: the haystack text is empty", name);
    if (!lk_utf8_valid(text, len)) return lk_fail(err, LOKI_ERR_ARG, "%s: the haystack is not valid UTF-8", name);
    if (len > (size_t)INT32_MAX / 2) return lk_fail(err, LOKI_ERR_ARG, "%s: the haystack is too large (%zu bytes)", name, len);
    loki_model_info info;
    loki_model_get_info(model, &info);
    /* does the model prepend BOS? (tokenize "" with add_bos) */
    int32_t probe[4], n = 0;
    loki_status st = loki_tokenize(model, "", 0, true, false, probe, 4, &n, err);
    if (st) return lk_fail_prefix(err, "%s", name);
    h->bos = n >= 1 && probe[0] == info.bos_id ? info.bos_id : -1;
    h->eos = info.eos_id;
    id_buf b = {0};
    st = tokenize_into(model, text, len, &b, &n, err);
    if (st) {
        free(b.p);
        return lk_fail_prefix(err, "%s", name);
    }
    if (n < 1) {
        free(b.p);
        return lk_fail(err, LOKI_ERR_ARG, "%s: the haystack has no tokens", name);
    }
    h->model = model;
    h->text = text;
    h->len = len;
    h->ids = b.p;
    h->n_ids = n;
    h->bytes_per_token = (double)len / n;
    return LOKI_OK;
}

void lk_haystack_free(lk_haystack *h) {
    if (!h) return;
    free(h->ids);
    memset(h, 0, sizeof *h);
    h->bos = h->eos = -1;
}

/* ------------------------------------------------- text boundaries */

/* ASCII whitespace (the only bytes the haystack is cut at, so cuts keep UTF-8 valid). */
static bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

/* x is the first byte of a word: a non-space after a space (or at 0). */
static bool word_start(const char *t, size_t len, size_t x) {
    return x < len && !is_ws(t[x]) && (x == 0 || is_ws(t[x - 1]));
}

/* x is just past a word: a non-space before it, a space (or the end) at it. */
static bool word_end(const char *t, size_t len, size_t x) {
    return x > 0 && x <= len && !is_ws(t[x - 1]) && (x == len || is_ws(t[x]));
}

/* Smallest word start >= x, or len. */
static size_t next_word_start(const char *t, size_t len, size_t x) {
    while (x < len && !word_start(t, len, x)) x++;
    return x;
}

/* Largest word end in (lo, x], or lo if none. */
static size_t prev_word_end(const char *t, size_t len, size_t lo, size_t x) {
    if (x > len) x = len;
    while (x > lo && !word_end(t, len, x)) x--;
    return x;
}

/* Smallest word end in (x, len], or len if none. */
static size_t next_word_end(const char *t, size_t len, size_t x) {
    x++;
    while (x < len && !word_end(t, len, x)) x++;
    return x < len ? x : len;
}

/* Byte length of a closing quote/bracket ending at t[x-1] (", ', ), ], or the
 * UTF-8 right quotes U+201D / U+2019), else 0. */
static size_t closer_before(const char *t, size_t x) {
    if (x >= 1 && (t[x - 1] == '"' || t[x - 1] == '\'' || t[x - 1] == ')' || t[x - 1] == ']')) return 1;
    if (x >= 3 && (unsigned char)t[x - 3] == 0xE2 && (unsigned char)t[x - 2] == 0x80 &&
        ((unsigned char)t[x - 1] == 0x9D || (unsigned char)t[x - 1] == 0x99))
        return 3;
    return 0;
}

/* x starts a sentence: the text start, or a word start after a blank line,
 * or after [.!?] (plus closing quotes) and whitespace. */
static bool sentence_start(const char *t, size_t len, size_t x) {
    if (x == 0) return len > 0 && !is_ws(t[0]);
    if (!word_start(t, len, x)) return false;
    size_t j = x, newlines = 0;
    while (j > 0 && is_ws(t[j - 1])) newlines += t[--j] == '\n';
    if (newlines >= 2) return true;
    for (size_t c; (c = closer_before(t, j)) > 0;) j -= c;
    return j > 0 && (t[j - 1] == '.' || t[j - 1] == '!' || t[j - 1] == '?');
}

/* Back to a UTF-8 character boundary at or before x (x <= len). */
static size_t utf8_floor(const char *t, size_t len, size_t x) {
    while (x > 0 && x < len && ((unsigned char)t[x] & 0xC0) == 0x80) x--;
    return x;
}

/* --------------------------------------------------- prompt assembly */

/* Append s[0, n) to b, keeping it NUL-terminated. */
static loki_status tb_put(lk_strbuf *b, const char *s, size_t n, loki_error *err) {
    if (!lk_strbuf_put(b, s, n)) return lk_fail(err, LOKI_ERR_NOMEM, "out of memory (%zu bytes of prompt text)", b->n + n);
    return LOKI_OK;
}

/* State of one prompt construction. */
typedef struct pk_builder {
    const lk_haystack *h;
    char key_sentence[96];
    size_t key_len;
    lk_strbuf text;
    id_buf ids;
    int32_t bos_n; /* 1 if the model prepends BOS */
} pk_builder;

/* Compose INTRO + hay[s,p) + KEY + hay[p,e) + QUESTION into b->text with a
 * space where the key would touch a word; *key_off = offset of the key. */
static loki_status compose(pk_builder *b, size_t s, size_t p, size_t e, size_t *key_off, loki_error *err) {
    const char *t = b->h->text;
    b->text.n = 0;
    loki_status st;
    if ((st = tb_put(&b->text, LK_PASSKEY_INTRO, strlen(LK_PASSKEY_INTRO), err))) return st;
    if ((st = tb_put(&b->text, t + s, p - s, err))) return st;
    if (p > s && !is_ws(t[p - 1]) && (st = tb_put(&b->text, " ", 1, err))) return st;
    *key_off = b->text.n;
    if ((st = tb_put(&b->text, b->key_sentence, b->key_len, err))) return st;
    if (p < e && !is_ws(t[p]) && (st = tb_put(&b->text, " ", 1, err))) return st;
    if ((st = tb_put(&b->text, t + p, e - p, err))) return st;
    return tb_put(&b->text, LK_PASSKEY_QUESTION, strlen(LK_PASSKEY_QUESTION), err);
}

/* Token count (BOS included) of the prompt for the span (s, p, e). */
static loki_status prompt_tokens(pk_builder *b, size_t s, size_t p, size_t e, int32_t *n, loki_error *err) {
    size_t key_off;
    loki_status st = compose(b, s, p, e, &key_off, err);
    if (st) return st;
    if ((st = tokenize_into(b->h->model, b->text.p, b->text.n, &b->ids, n, err))) return st;
    *n += b->bos_n;
    return LOKI_OK;
}

/* Tokens of text[0, len) with trailing whitespace dropped (BOS included). */
static loki_status prefix_tokens(pk_builder *b, const char *text, size_t len, int32_t *n, loki_error *err) {
    while (len > 0 && is_ws(text[len - 1])) len--;
    loki_status st = tokenize_into(b->h->model, text, len, &b->ids, n, err);
    *n += b->bos_n;
    return st;
}

/* Fit the haystack end *e (a word end, >= lo) so the prompt has as close to
 * `length` tokens as word boundaries allow (ties: not over). If key_at_end,
 * the key moves with the end (p = e); else it stays at *p. *n = the count. */
static loki_status fit_end(pk_builder *b, int32_t length, size_t s, size_t lo, bool key_at_end, size_t *p,
                           size_t *e, int32_t fixed, int32_t *n_out, loki_error *err) {
    const char *t = b->h->text;
    size_t len = b->h->len;
    int32_t n = 0;
    loki_status st = prompt_tokens(b, s, key_at_end ? *e : *p, *e, &n, err);
    /* proportional steps from the local bytes per token */
    for (int it = 0; !st && it < 8 && n != length; it++) {
        double bpt = n - fixed > 8 ? (double)(*e - s) / (n - fixed) : b->h->bytes_per_token;
        double target = (double)*e + (length - n) * bpt;
        size_t x = target <= (double)lo ? lo : target >= (double)len ? len : (size_t)target;
        size_t e2 = x > *e ? prev_word_end(t, len, *e, x) : prev_word_end(t, len, lo, x);
        if (e2 == *e || (n < length && e2 < *e) || (n > length && e2 > *e)) break;
        *e = e2;
        st = prompt_tokens(b, s, key_at_end ? *e : *p, *e, &n, err);
    }
    /* word steps: forward while under, back while over; keep the closer */
    while (!st && n < length && *e < len) {
        size_t e2 = next_word_end(t, len, *e);
        int32_t n2 = 0;
        if (e2 == *e || (st = prompt_tokens(b, s, key_at_end ? e2 : *p, e2, &n2, err))) break;
        if (n2 > length) {
            if (n2 - length < length - n) *e = e2, n = n2;
            break;
        }
        *e = e2;
        n = n2;
    }
    while (!st && n > length && *e > lo) {
        size_t e2 = prev_word_end(t, len, lo, *e - 1);
        int32_t n2 = 0;
        if ((st = prompt_tokens(b, s, key_at_end ? e2 : *p, e2, &n2, err))) break;
        bool closer = length - n2 <= n - length;
        if (n2 <= length && !closer) break;
        *e = e2;
        n = n2;
    }
    if (key_at_end) *p = *e;
    *n_out = n;
    return st;
}

/* The key position for `depth`: the sentence start (else word start) nearest
 * the byte where `depth` of the haystack tokens of hay[s, e) lie before it. */
static loki_status place_key(pk_builder *b, size_t s, size_t e, double depth, size_t *p, loki_error *err) {
    const char *t = b->h->text;
    size_t len = b->h->len;
    if (depth <= 0.0 || e <= s) {
        *p = s;
        return LOKI_OK;
    }
    if (depth >= 1.0) {
        *p = e;
        return LOKI_OK;
    }
    int32_t total = 0, c = 0;
    loki_status st = tokenize_into(b->h->model, t + s, e - s, &b->ids, &total, err);
    if (st) return st;
    int32_t want = (int32_t)lround(depth * total);
    /* smallest x with tokens(hay[s, x)) >= want */
    size_t lo = s, hi = e;
    while (hi - lo > 1) {
        size_t mid = utf8_floor(t, len, lo + (hi - lo) / 2);
        if (mid <= lo) break;
        if ((st = tokenize_into(b->h->model, t + s, mid - s, &b->ids, &c, err))) return st;
        if (c >= want) hi = mid;
        else lo = mid;
    }
    size_t x = hi;
    /* nearest sentence start within 2% of the span (at least 32 bytes) */
    size_t win = LK_MAX((size_t)32, (e - s) / 50), best = SIZE_MAX;
    for (size_t d = 0; d <= win && best == SIZE_MAX; d++) {
        if (x >= s + d && x - d < e && sentence_start(t, len, x - d) && x - d > s) best = x - d;
        else if (x + d < e && sentence_start(t, len, x + d)) best = x + d;
    }
    if (best == SIZE_MAX) { /* nearest word start */
        size_t fwd = next_word_start(t, len, x), back = x;
        while (back > s && !word_start(t, len, back)) back--;
        best = (fwd < e && fwd - x < x - back) || back <= s ? fwd : back;
        if (best > e) best = e;
    }
    *p = best;
    return LOKI_OK;
}

loki_status lk_passkey_build(const lk_haystack *h, int32_t length, double depth, lk_rng *rng,
                             lk_passkey_prompt *out, loki_error *err) {
    memset(out, 0, sizeof *out);
    if (length < LK_RETRIEVAL_MIN_LENGTH)
        return lk_fail(err, LOKI_ERR_ARG, "--lengths: %d is below the minimum of %d tokens", length,
                       LK_RETRIEVAL_MIN_LENGTH);
    if (!(depth >= 0.0 && depth <= 1.0)) return lk_fail(err, LOKI_ERR_ARG, "--depths: %g is outside [0, 1]", depth);
    pk_builder b = {.h = h, .bos_n = h->bos >= 0};
    loki_status st = LOKI_OK;
    int32_t key = 10000 + (int32_t)lk_rng_below(rng, 90000);
    b.key_len = (size_t)snprintf(b.key_sentence, sizeof b.key_sentence, LK_PASSKEY_KEY_FMT, key, key);
    const char *t = h->text;
    size_t len = h->len;
    /* the fixed parts alone */
    int32_t fixed = 0, n = 0;
    if ((st = prompt_tokens(&b, 0, 0, 0, &fixed, err))) goto done;
    if (length - fixed < 16) {
        st = lk_fail(err, LOKI_ERR_ARG, "--lengths: %d tokens leave no room for a haystack (the fixed text takes %d)",
                     length, fixed);
        goto done;
    }
    /* a random start with room for ~1.5x the expected bytes after it */
    double need = 1.5 * (length - fixed) * h->bytes_per_token + 256;
    size_t room = need < (double)len ? len - (size_t)need : 0;
    size_t r = (size_t)lk_rng_below(rng, (uint64_t)room + 1), s = r;
    while (s < len && s - r < 4096 && !sentence_start(t, len, s)) s++;
    if (s >= len || s - r >= 4096) s = next_word_start(t, len, r);
    if (s >= len) s = next_word_start(t, len, 0);
    /* phase 1: the haystack end with the key at the end */
    double guess = (double)s + (length - fixed) * h->bytes_per_token;
    size_t e = prev_word_end(t, len, s, guess >= (double)len ? len : (size_t)guess), p = e;
    if (e <= s) e = p = next_word_end(t, len, s);
    if ((st = fit_end(&b, length, s, s, true, &p, &e, fixed, &n, err))) goto done;
    if (n < length - 8) {
        st = lk_fail(err, LOKI_ERR_RANGE,
                     "--haystack: the text is too short for --lengths %d (a prompt reaches %d tokens from byte %zu)",
                     length, n, s);
        goto done;
    }
    /* phase 2: the key at depth; phase 3: refit the end around it */
    if ((st = place_key(&b, s, e, depth, &p, err))) goto done;
    if ((st = fit_end(&b, length, s, p, p == e, &p, &e, fixed, &n, err))) goto done;
    /* a word at the end can be several tokens: if the length is not exact,
     * drop up to 6 words at the start, refitting the end each time */
    for (size_t s2 = s, shift = 0; n != length && shift < 6; shift++) {
        s2 = next_word_start(t, len, s2 + 1);
        if (s2 >= e || (s2 > p && p != s)) break;
        size_t p2 = p == s ? s2 : p, e2 = e;
        int32_t n2 = 0;
        if ((st = fit_end(&b, length, s2, p2, p2 == e2, &p2, &e2, fixed, &n2, err))) goto done;
        if (abs(n2 - length) < abs(n - length)) s = s2, p = p2, e = e2, n = n2;
    }
    /* the final prompt */
    size_t key_off = 0;
    int32_t key_pos = 0, intro = 0;
    if ((st = compose(&b, s, p, e, &key_off, err))) goto done;
    int32_t cap = (int32_t)LK_MIN(b.text.n + 16, (size_t)INT32_MAX / 8);
    if (!(out->ids = lk_malloc(sizeof(int32_t) * ((size_t)cap + 1), err))) {
        st = LOKI_ERR_NOMEM;
        goto done;
    }
    if (b.bos_n) out->ids[0] = h->bos;
    if ((st = loki_tokenize(h->model, b.text.p, b.text.n, false, false, out->ids + b.bos_n, cap, &n, err))) goto done;
    out->n_tokens = n + b.bos_n;
    if ((st = prefix_tokens(&b, b.text.p, key_off, &key_pos, err))) goto done;
    if ((st = prefix_tokens(&b, LK_PASSKEY_INTRO, strlen(LK_PASSKEY_INTRO), &intro, err))) goto done;
    out->key_pos = key_pos;
    out->hay_tokens = out->n_tokens - fixed;
    double dep = out->hay_tokens > 0 ? (double)(key_pos - intro) / out->hay_tokens : 0.0;
    out->depth = dep < 0 ? 0 : dep > 1 ? 1 : dep;
    out->key = key;
    out->key_off = key_off;
    out->text_len = b.text.n;
    out->text = b.text.p;
    out->hay_begin = s;
    out->hay_end = e;
    b.text.p = NULL;
done:
    free(b.text.p);
    free(b.ids.p);
    if (st) lk_passkey_prompt_free(out);
    return st;
}

void lk_passkey_prompt_free(lk_passkey_prompt *p) {
    if (!p) return;
    free(p->text);
    free(p->ids);
    memset(p, 0, sizeof *p);
}

int32_t lk_passkey_parse(const char *text, size_t len, bool *final) {
    if (final) *final = false;
    size_t i = 0;
    while (i < len) {
        if (text[i] < '0' || text[i] > '9') {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && text[j] >= '0' && text[j] <= '9') j++;
        if (j - i == 5) {
            if (final) *final = j < len;
            int32_t v = 0;
            for (size_t k = i; k < j; k++) v = v * 10 + (text[k] - '0');
            return v;
        }
        i = j;
    }
    return -1;
}

/* Index of the largest of x[0, n) (the first on ties). */
static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

loki_status lk_passkey_run(loki_context *ctx, const lk_haystack *h, int32_t length, double depth,
                           int32_t max_gen, lk_rng *rng, lk_passkey_trial *out, loki_error *err) {
    memset(out, 0, sizeof *out);
    out->answer = -1;
    if (max_gen < 1) return lk_fail(err, LOKI_ERR_ARG, "passkey: max_gen must be >= 1, got %d", max_gen);
    lk_passkey_prompt pr;
    loki_status st = lk_passkey_build(h, length, depth, rng, &pr, err);
    if (st) return st;
    loki_model_info info;
    loki_model_get_info(h->model, &info);
    if (pr.n_tokens + max_gen - 1 > loki_context_n_ctx(ctx)) {
        st = lk_fail(err, LOKI_ERR_RANGE, "passkey: a %d-token prompt + %d generated tokens exceed the context (%d)",
                     pr.n_tokens, max_gen, loki_context_n_ctx(ctx));
        goto done;
    }
    out->key = pr.key;
    out->n_prompt = pr.n_tokens;
    out->depth = pr.depth;
    loki_context_reset(ctx);
    if ((st = loki_eval(ctx, pr.ids, pr.n_tokens, false, err))) goto done;
    int32_t prev = pr.ids[pr.n_tokens - 1];
    size_t olen = 0;
    char piece[128];
    for (int32_t g = 0; g < max_gen; g++) {
        int32_t tok = argmax(loki_get_logits(ctx, NULL), info.n_vocab);
        if (tok == h->eos) break;
        out->n_gen++;
        int32_t pl = loki_token_to_piece(h->model, prev, tok, false, piece, (int32_t)sizeof piece);
        if (pl > 0) {
            size_t k = LK_MIN((size_t)LK_MIN(pl, (int32_t)sizeof piece), sizeof out->output - 1 - olen);
            memcpy(out->output + olen, piece, k);
            olen += k;
            out->output[olen] = '\0';
        }
        prev = tok;
        bool final = false;
        lk_passkey_parse(out->output, olen, &final);
        if (final || g + 1 == max_gen) break;
        if ((st = loki_eval(ctx, &tok, 1, false, err))) goto done;
    }
    out->answer = lk_passkey_parse(out->output, olen, NULL);
    out->correct = out->answer == out->key;
done:
    lk_passkey_prompt_free(&pr);
    if (st) return lk_fail_prefix(err, "passkey (length %d, depth %g)", length, depth);
    return LOKI_OK;
}

/* ----------------------------------------------------------------- repeat */

loki_status lk_repeat_build(const lk_haystack *h, int32_t length, double depth, int32_t span, lk_rng *rng,
                            lk_repeat_seq *out, loki_error *err) {
    memset(out, 0, sizeof *out);
    if (length < LK_RETRIEVAL_MIN_LENGTH)
        return lk_fail(err, LOKI_ERR_ARG, "--lengths: %d is below the minimum of %d tokens", length,
                       LK_RETRIEVAL_MIN_LENGTH);
    if (!(depth >= 0.0 && depth <= 1.0)) return lk_fail(err, LOKI_ERR_ARG, "--depths: %g is outside [0, 1]", depth);
    int32_t bos_n = h->bos >= 0;
    if (span < 2 || 2 * span + bos_n > length)
        return lk_fail(err, LOKI_ERR_ARG, "--span must be in 2..%d for length %d, got %d", (length - bos_n) / 2,
                       length, span);
    int32_t window = length - span - bos_n; /* book tokens before the repeat */
    if (h->n_ids < window)
        return lk_fail(err, LOKI_ERR_RANGE, "--haystack: the text has %d tokens, too few for --lengths %d", h->n_ids,
                       length);
    int32_t off = (int32_t)lk_rng_below(rng, (uint64_t)(h->n_ids - window) + 1);
    int32_t a = (int32_t)lround(depth * (window - span));
    if (!(out->ids = lk_malloc(sizeof(int32_t) * (size_t)length, err))) return LOKI_ERR_NOMEM;
    if (bos_n) out->ids[0] = h->bos;
    memcpy(out->ids + bos_n, h->ids + off, sizeof(int32_t) * (size_t)window);
    memcpy(out->ids + bos_n + window, h->ids + off + a, sizeof(int32_t) * (size_t)span);
    out->n = length;
    out->span = span;
    out->span_start = bos_n + a;
    out->rep_start = length - span;
    out->book_offset = off;
    return LOKI_OK;
}

void lk_repeat_seq_free(lk_repeat_seq *s) {
    if (!s) return;
    free(s->ids);
    memset(s, 0, sizeof *s);
}

loki_status lk_repeat_run(loki_context *ctx, const lk_haystack *h, int32_t length, double depth, int32_t span,
                          lk_rng *rng, lk_repeat_trial *out, loki_error *err) {
    memset(out, 0, sizeof *out);
    if (length > loki_context_n_ctx(ctx))
        return lk_fail(err, LOKI_ERR_RANGE, "repeat: length %d exceeds the context (%d)", length,
                       loki_context_n_ctx(ctx));
    lk_repeat_seq sq;
    loki_status st = lk_repeat_build(h, length, depth, span, rng, &sq, err);
    if (st) return st;
    loki_model_info info;
    loki_model_get_info(h->model, &info);
    loki_context_reset(ctx);
    /* chunks [0, a) [a, a+span) [a+span, rep) [rep, n) with a = span_start;
     * logits (span rows) for the 2nd and 4th: row j predicts ids[start+j+1] */
    const int32_t bounds[5] = {0, sq.span_start, sq.span_start + sq.span, sq.rep_start, sq.n};
    for (int c = 0; c < 4; c++) {
        int32_t b0 = bounds[c], nb = bounds[c + 1] - bounds[c];
        bool scored = c == 1 || c == 3;
        if (nb == 0) continue;
        if ((st = loki_eval(ctx, sq.ids + b0, nb, scored, err))) goto done;
        if (!scored) continue;
        int32_t rows = 0, hits = 0;
        const float *logits = loki_get_logits(ctx, &rows);
        if (rows != sq.span) {
            st = lk_fail(err, LOKI_ERR_RANGE, "repeat: got %d logit rows, expected %d", rows, sq.span);
            goto done;
        }
        for (int32_t j = 0; j + 1 < sq.span; j++)
            hits += argmax(logits + (size_t)j * info.n_vocab, info.n_vocab) == sq.ids[b0 + j + 1];
        if (c == 1) out->first_correct = hits;
        else out->correct = hits;
    }
    out->total = sq.span - 1;
    out->n_tokens = sq.n;
    out->book_offset = sq.book_offset;
    out->span_start = sq.span_start;
done:
    lk_repeat_seq_free(&sq);
    if (st) return lk_fail_prefix(err, "repeat (length %d, depth %g)", length, depth);
    return LOKI_OK;
}
