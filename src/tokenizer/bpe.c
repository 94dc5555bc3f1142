/*
 * bpe.c - rank-ordered BPE merging, as llama.cpp's llm_tokenizer_bpe_session:
 * a word starts as one symbol per character, and the adjacent pair with the
 * lowest merge rank (leftmost on ties) is merged until no listed pair is left.
 * A binary heap of candidate pairs keeps that O(n log n) per word; stale
 * candidates (a side already merged away) are recognised by their token ids.
 *
 * Used for byte-level BPE (GPT-2 byte-to-unicode characters: one symbol per
 * input byte) and for Hugging Face SentencePiece-style BPE (raw UTF-8 with
 * U+2581 for spaces, unknown characters falling back to <0xHH> tokens).
 */
#include "tokenizer/tok_impl.h"

#include <stdlib.h>
#include <string.h>

typedef struct sym {
    int32_t id; /* token of the symbol's text, -1 if none */
    int32_t prev, next;
    uint32_t off, len; /* bytes of the word; len 0 once merged away */
} sym;

typedef struct pair {
    int32_t rank, left, right;
    int32_t lid, rid; /* ids when queued: a mismatch later means stale */
    int32_t result;
} pair;

typedef struct merger {
    sym *s;
    size_t n, cap;
    pair *h;
    size_t hn, hcap;
} merger;

loki_status lk__ids_push(lk_ids *a, int32_t id, loki_error *err) {
    if (a->n == a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 256;
        int32_t *np = realloc(a->p, ncap * sizeof *np);
        if (!np) return lk_fail(err, LOKI_ERR_NOMEM, "out of memory for token ids");
        a->p = np;
        a->cap = ncap;
    }
    a->p[a->n++] = id;
    return LOKI_OK;
}

/* Release the merger's buffers (the struct itself is the caller's). */
static void merger_free(merger *m) {
    free(m->s);
    free(m->h);
}

/* Make room for n symbols and empty the symbol list and the heap. */
static loki_status merger_reserve(merger *m, size_t n, loki_error *err) {
    if (n > INT32_MAX) return lk_fail(err, LOKI_ERR_RANGE, "word of %zu characters is too long", n);
    if (n > m->cap) {
        sym *ns = realloc(m->s, n * sizeof *ns);
        if (!ns) return lk_fail(err, LOKI_ERR_NOMEM, "out of memory for BPE symbols");
        m->s = ns;
        m->cap = n;
    }
    m->n = 0;
    m->hn = 0;
    return LOKI_OK;
}

/* Heap order: lower rank first, then the leftmost pair. */
static bool pair_before(const pair *a, const pair *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

/* Insert p into the candidate heap. */
static loki_status heap_push(merger *m, pair p, loki_error *err) {
    if (m->hn == m->hcap) {
        size_t ncap = m->hcap ? m->hcap * 2 : 64;
        pair *nh = realloc(m->h, ncap * sizeof *nh);
        if (!nh) return lk_fail(err, LOKI_ERR_NOMEM, "out of memory for BPE merges");
        m->h = nh;
        m->hcap = ncap;
    }
    size_t i = m->hn++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &m->h[parent])) break;
        m->h[i] = m->h[parent];
        i = parent;
    }
    m->h[i] = p;
    return LOKI_OK;
}

/* Remove and return the first candidate (heap must be non-empty). */
static pair heap_pop(merger *m) {
    pair top = m->h[0];
    pair last = m->h[--m->hn];
    size_t i = 0, n = m->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pair_before(&m->h[c + 1], &m->h[c])) c++;
        if (!pair_before(&m->h[c], &last)) break;
        m->h[i] = m->h[c];
        i = c;
    }
    if (n > 0) m->h[i] = last;
    return top;
}

/* Queue the pair (left, right) if the merges table lists it. */
static loki_status try_pair(const lk_vocab_impl *im, merger *m, int32_t left, int32_t right,
                            loki_error *err) {
    if (left < 0 || right < 0) return LOKI_OK;
    int32_t a = m->s[left].id, b = m->s[right].id;
    if (a < 0 || b < 0) return LOKI_OK;
    uint64_t val;
    if (!lk_u64map_get(&im->merges, ((uint64_t)(uint32_t)a << 32) | (uint32_t)b, &val)) return LOKI_OK;
    pair p = {(int32_t)(val >> 32), left, right, a, b, (int32_t)(uint32_t)val};
    return heap_push(m, p, err);
}

/* Merge the symbols m->s[0..n) (linked in order) until no pair applies. */
static loki_status merge_all(const lk_vocab_impl *im, merger *m, loki_error *err) {
    loki_status st;
    for (size_t i = 1; i < m->n; i++)
        if ((st = try_pair(im, m, (int32_t)i - 1, (int32_t)i, err))) return st;
    while (m->hn > 0) {
        pair p = heap_pop(m);
        sym *l = &m->s[p.left], *r = &m->s[p.right];
        if (l->len == 0 || r->len == 0 || l->id != p.lid || r->id != p.rid) continue; /* stale */
        l->len += r->len;
        l->id = p.result;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) m->s[r->next].prev = p.left;
        if ((st = try_pair(im, m, l->prev, p.left, err))) return st;
        if ((st = try_pair(im, m, p.left, l->next, err))) return st;
    }
    return LOKI_OK;
}

/* Byte-level BPE of one pre-token word w[0..n). */
static loki_status bpe_word(const lk_vocab *v, merger *m, const char *w, size_t n, char **enc,
                            size_t *enc_cap, lk_ids *out, loki_error *err) {
    const lk_vocab_impl *im = v->impl;
    loki_status st;
    if (im->ignore_merges && im->byte_encode) {
        /* llama.cpp (llama-bpe and others): a word that is itself a token
         * is emitted whole, whatever the merges would make of it. */
        if (*enc_cap < 2 * n) {
            char *ne = realloc(*enc, 2 * n);
            if (!ne) return lk_fail(err, LOKI_ERR_NOMEM, "out of memory encoding a word");
            *enc = ne;
            *enc_cap = 2 * n;
        }
        size_t el = 0;
        for (size_t i = 0; i < n; i++) el += (size_t)lk__utf8_encode(im->byte_cp[(uint8_t)w[i]], *enc + el);
        int32_t id = lk_strmap_get(&im->tok_map, *enc, el);
        if (id >= 0) return lk__ids_push(out, id, err);
    }
    if ((st = merger_reserve(m, n, err))) return st;
    for (size_t i = 0; i < n; i++) {
        sym *s = &m->s[m->n++];
        s->id = im->byte_tok[(uint8_t)w[i]];
        s->prev = (int32_t)i - 1;
        s->next = i + 1 < n ? (int32_t)i + 1 : -1;
        s->off = (uint32_t)i;
        s->len = 1;
    }
    if ((st = merge_all(im, m, err))) return st;
    for (int32_t i = 0; i >= 0 && (size_t)i < m->n; i = m->s[i].next) {
        int32_t id = m->s[i].id;
        /* A byte without a token (never in a real byte-level vocabulary):
         * llama.cpp drops it; keep a trace with <unk> when there is one. */
        if (id < 0) id = v->unk_id;
        if (id >= 0 && (st = lk__ids_push(out, id, err))) return st;
    }
    return LOKI_OK;
}

loki_status lk__bpe_fragment(const lk_vocab *v, const char *text, size_t len, lk_ids *out,
                             loki_error *err) {
    const lk_vocab_impl *im = v->impl;
    lk_spans words = {0};
    merger m = {0};
    char *enc = NULL, *pre = NULL;
    size_t enc_cap = 0;
    loki_status st;
    if (im->bpe_prefix_space && len > 0 && text[0] != ' ') {
        /* HF ByteLevel(add_prefix_space): the text is read as " " + text */
        pre = lk_malloc(len + 1, err);
        if (!pre) return LOKI_ERR_NOMEM;
        pre[0] = ' ';
        memcpy(pre + 1, text, len);
        text = pre;
        len++;
    }
    st = lk__pretok_split(v, text, len, &words, err);
    for (size_t i = 0; !st && i < words.n; i++)
        st = bpe_word(v, &m, text + words.off[i], words.len[i], &enc, &enc_cap, out, err);
    lk__spans_free(&words);
    merger_free(&m);
    free(enc);
    free(pre);
    return st;
}

loki_status lk__bpe_rank_spm(const lk_vocab *v, const char *text, size_t len, lk_ids *out,
                             loki_error *err) {
    const lk_vocab_impl *im = v->impl;
    merger m = {0};
    loki_status st = merger_reserve(&m, len, err);
    if (st) goto done;
    for (size_t pos = 0; pos < len;) {
        size_t cl = (size_t)lk_utf8_len((unsigned char)text[pos]);
        if (cl > len - pos) cl = len - pos;
        sym *s = &m.s[m.n];
        s->id = lk_strmap_get(&im->tok_map, text + pos, cl);
        s->prev = (int32_t)m.n - 1;
        s->off = (uint32_t)pos;
        s->len = (uint32_t)cl;
        pos += cl;
        s->next = pos < len ? (int32_t)m.n + 1 : -1;
        m.n++;
    }
    if ((st = merge_all(im, &m, err))) goto done;
    for (int32_t i = 0; i >= 0 && (size_t)i < m.n; i = m.s[i].next) {
        const sym *s = &m.s[i];
        if (s->id >= 0) {
            if ((st = lk__ids_push(out, s->id, err))) goto done;
            continue;
        }
        for (uint32_t k = 0; k < s->len; k++) { /* byte fallback */
            int32_t id = im->byte_tok[(uint8_t)text[s->off + k]];
            if (id < 0) id = v->unk_id;
            if (id >= 0 && (st = lk__ids_push(out, id, err))) goto done;
        }
    }
done:
    merger_free(&m);
    return st;
}
