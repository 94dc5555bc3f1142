/*
 * spm.c - SentencePiece-style tokenization of one text fragment, as
 * llama.cpp's llm_tokenizer_spm_session (and llama2.c run.c's encode, which
 * makes the same choices): start from one symbol per UTF-8 character, then
 * repeatedly merge the adjacent pair whose joined text is a token with the
 * highest score (leftmost on ties); symbols that are not tokens at the end
 * become <0xHH> byte tokens. A heap of candidate pairs makes this
 * O(n log n); a candidate is stale when its symbols' lengths changed.
 *
 * Spaces become U+2581 and a space is prepended (add_space_prefix) for
 * SentencePiece vocabularies; llama2.c's tokenizer keeps plain spaces.
 * Hugging Face SentencePiece-style vocabularies (merge ranks, no scores) go
 * to lk__bpe_rank_spm after the same escaping.
 */
#include "tokenizer/tok_impl.h"

#include <stdlib.h>
#include <string.h>

typedef struct ssym {
    int32_t prev, next;
    uint32_t off, len; /* len 0 once merged away */
    bool frozen;       /* llama2.c: unknown code point, already bytes */
} ssym;

typedef struct bigram {
    float score;
    int32_t left, right;
    uint32_t size;
} bigram;

typedef struct spm_state {
    const lk_vocab *v;
    const char *text;
    ssym *s;
    size_t n;
    bigram *h;
    size_t hn, hcap;
} spm_state;

/* Heap order: higher score first, then the leftmost pair (llama.cpp). */
static bool bigram_before(const bigram *a, const bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

/* Insert b into the candidate heap. */
static loki_status push(spm_state *st, bigram b, loki_error *err) {
    if (st->hn == st->hcap) {
        size_t ncap = st->hcap ? st->hcap * 2 : 64;
        bigram *nh = realloc(st->h, ncap * sizeof *nh);
        if (!nh) return lk_fail(err, LOKI_ERR_NOMEM, "out of memory for SPM merges");
        st->h = nh;
        st->hcap = ncap;
    }
    size_t i = st->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_before(&b, &st->h[p])) break;
        st->h[i] = st->h[p];
        i = p;
    }
    st->h[i] = b;
    return LOKI_OK;
}

/* Remove and return the best candidate (heap must be non-empty). */
static bigram pop(spm_state *st) {
    bigram top = st->h[0], last = st->h[--st->hn];
    size_t i = 0, n = st->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bigram_before(&st->h[c + 1], &st->h[c])) c++;
        if (!bigram_before(&st->h[c], &last)) break;
        st->h[i] = st->h[c];
        i = c;
    }
    if (n > 0) st->h[i] = last;
    return top;
}

/* Queue (left, right) if their joined text (contiguous in st->text) is a token. */
static loki_status try_bigram(spm_state *st, int32_t left, int32_t right, loki_error *err) {
    if (left < 0 || right < 0) return LOKI_OK;
    const ssym *l = &st->s[left], *r = &st->s[right];
    if (l->frozen || r->frozen) return LOKI_OK;
    uint32_t size = l->len + r->len;
    int32_t id = lk_strmap_get(&st->v->impl->tok_map, st->text + l->off, size);
    if (id < 0) return LOKI_OK;
    bigram b = {st->v->impl->score[id], left, right, size};
    return push(st, b, err);
}

/* Score-driven merging of the escaped text t[0..n); appends the ids. */
static loki_status spm_merge(const lk_vocab *v, const char *t, size_t n, lk_ids *out, loki_error *err) {
    const lk_vocab_impl *im = v->impl;
    spm_state st = {v, t, NULL, 0, NULL, 0, 0};
    loki_status rc = LOKI_OK;
    if (n == 0) return LOKI_OK;
    if (n > INT32_MAX) return lk_fail(err, LOKI_ERR_RANGE, "text of %zu bytes is too long", n);
    st.s = lk_malloc(n * sizeof *st.s, err);
    if (!st.s) return LOKI_ERR_NOMEM;
    for (size_t pos = 0; pos < n;) {
        size_t cl = (size_t)lk_utf8_len((unsigned char)t[pos]);
        if (cl > n - pos) cl = n - pos;
        ssym *s = &st.s[st.n];
        s->prev = (int32_t)st.n - 1;
        s->off = (uint32_t)pos;
        s->len = (uint32_t)cl;
        /* run.c turns an unknown code point into bytes before merging */
        s->frozen = im->llama2c && lk_strmap_get(&im->tok_map, t + pos, cl) < 0;
        pos += cl;
        s->next = pos < n ? (int32_t)st.n + 1 : -1;
        st.n++;
    }
    for (size_t i = 1; i < st.n; i++)
        if ((rc = try_bigram(&st, (int32_t)i - 1, (int32_t)i, err))) goto done;
    while (st.hn > 0) {
        bigram b = pop(&st);
        ssym *l = &st.s[b.left], *r = &st.s[b.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != b.size) continue; /* stale */
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) st.s[r->next].prev = b.left;
        if ((rc = try_bigram(&st, l->prev, b.left, err))) goto done;
        if ((rc = try_bigram(&st, b.left, l->next, err))) goto done;
    }
    for (int32_t i = 0; i >= 0; i = st.s[i].next) {
        const ssym *s = &st.s[i];
        int32_t id = lk_strmap_get(&im->tok_map, t + s->off, s->len);
        if (id >= 0) {
            if ((rc = lk__ids_push(out, id, err))) goto done;
            continue;
        }
        for (uint32_t k = 0; k < s->len; k++) { /* byte fallback */
            id = im->byte_tok[(uint8_t)t[s->off + k]];
            if (id < 0) id = v->unk_id;
            if (id >= 0 && (rc = lk__ids_push(out, id, err))) goto done;
        }
    }
done:
    free(st.s);
    free(st.h);
    return rc;
}

loki_status lk__spm_fragment(const lk_vocab *v, const char *text, size_t len, bool prefix_space,
                             lk_ids *out, loki_error *err) {
    const lk_vocab_impl *im = v->impl;
    size_t n_sp = prefix_space ? 1 : 0;
    for (size_t i = 0; i < len; i++) n_sp += text[i] == ' ';
    size_t grow = im->escape_spaces ? 2 : 0; /* ' ' (1 byte) -> U+2581 (3 bytes) */
    size_t n = len + (prefix_space ? 1 : 0) + n_sp * grow;
    char *t = lk_malloc(n ? n : 1, err);
    if (!t) return LOKI_ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < len + (prefix_space ? 1 : 0); i++) {
        char c = prefix_space ? (i == 0 ? ' ' : text[i - 1]) : text[i];
        if (c == ' ' && im->escape_spaces) {
            memcpy(t + k, "\xE2\x96\x81", 3);
            k += 3;
        } else {
            t[k++] = c;
        }
    }
    loki_status st = im->mode == LK_MERGE_RANK ? lk__bpe_rank_spm(v, t, k, out, err)
                                               : spm_merge(v, t, k, out, err);
    free(t);
    return st;
}
