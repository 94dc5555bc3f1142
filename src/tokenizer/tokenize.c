/*
 * tokenize.c - lk_tokenize (special-token partition, then the vocabulary's
 * algorithm per text fragment), lk_token_to_piece and lk_detokenize.
 */
#include "tokenizer/tok_impl.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

typedef struct frag {
    int32_t id; /* special token, or -1 for text[off..off+len) */
    size_t off, len;
} frag;

typedef struct frags {
    frag *p;
    size_t n, cap;
} frags;

/* Append a fragment (special token id, or -1 and a text span). */
static loki_status frags_push(frags *f, int32_t id, size_t off, size_t len, loki_error *err) {
    if (f->n == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 16;
        frag *np = realloc(f->p, ncap * sizeof *np);
        if (!np) return lk_fail(err, LOKI_ERR_NOMEM, "out of memory splitting special tokens");
        f->p = np;
        f->cap = ncap;
    }
    f->p[f->n++] = (frag){id, off, len};
    return LOKI_OK;
}

/* Split text fragments on special/added tokens, as llama.cpp's
 * tokenizer_st_partition: tokens are tried longest first, each one cutting
 * every remaining text fragment at all its (non-overlapping, leftmost-first)
 * occurrences. Control and unknown tokens only when parse_special;
 * user-defined (added, non-special) tokens always, as Hugging Face does.
 * lstrip/rstrip tokens swallow the ASCII whitespace beside them. */
static loki_status partition(const lk_vocab *v, const char *text, size_t len, bool parse_special,
                             frags *cur, loki_error *err) {
    const lk_vocab_impl *im = v->impl;
    frags nxt = {0};
    loki_status st = LOKI_OK;
    if (len > 0 && (st = frags_push(cur, -1, 0, len, err))) return st;
    for (int32_t k = 0; k < im->n_special && cur->n > 0; k++) {
        int32_t id = im->special[k];
        int t = im->ttype[id];
        if (!parse_special && (t == LK_TOK_CONTROL || t == LK_TOK_UNKNOWN)) continue;
        uint32_t sl;
        const char *s = lk__tok_text(v, id, &sl);
        if (!memmem(text, len, s, sl)) continue; /* common case: absent */
        nxt.n = 0;
        for (size_t i = 0; i < cur->n; i++) {
            frag f = cur->p[i];
            if (f.id >= 0) {
                if ((st = frags_push(&nxt, f.id, 0, 0, err))) goto done;
                continue;
            }
            size_t pos = f.off, end = f.off + f.len;
            while (pos < end) {
                const char *m = memmem(text + pos, end - pos, s, sl);
                if (!m) {
                    if ((st = frags_push(&nxt, -1, pos, end - pos, err))) goto done;
                    break;
                }
                size_t ms = (size_t)(m - text), left = ms - pos;
                if (im->flags[id] & LK_TOKF_LSTRIP)
                    while (left > 0 && isspace((unsigned char)text[pos + left - 1])) left--;
                if (left > 0 && (st = frags_push(&nxt, -1, pos, left, err))) goto done;
                if ((st = frags_push(&nxt, id, 0, 0, err))) goto done;
                pos = ms + sl;
                if (im->flags[id] & LK_TOKF_RSTRIP)
                    while (pos < end && isspace((unsigned char)text[pos])) pos++;
            }
        }
        frags t2 = *cur;
        *cur = nxt;
        nxt = t2;
    }
done:
    free(nxt.p);
    return st;
}

/* Byte offset of the first invalid UTF-8 sequence (len if none). */
static size_t utf8_bad_offset(const char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        size_t l = (size_t)lk_utf8_len((unsigned char)s[i]);
        if (l > len - i || !lk_utf8_valid(s + i, l)) return i;
        i += l;
    }
    return len;
}

loki_status lk_tokenize(const lk_vocab *v, const char *text, size_t len, bool add_bos,
                        bool parse_special, int32_t *ids, int32_t cap, int32_t *n_out,
                        loki_error *err) {
    if (!v || !v->impl) return lk_fail(err, LOKI_ERR_ARG, "tokenize: no vocabulary");
    if (!text && len > 0) return lk_fail(err, LOKI_ERR_ARG, "tokenize: text is NULL but len is %zu", len);
    if (cap < 0 || (!ids && cap > 0)) return lk_fail(err, LOKI_ERR_ARG, "tokenize: bad output buffer (cap %d)", (int)cap);
    if (!n_out) return lk_fail(err, LOKI_ERR_ARG, "tokenize: n_out is NULL");
    if (!lk_utf8_valid(text, len))
        return lk_fail(err, LOKI_ERR_ARG, "tokenize: text is not valid UTF-8 (bad byte 0x%02X at offset %zu)",
                       (unsigned)(unsigned char)text[utf8_bad_offset(text, len)], utf8_bad_offset(text, len));
    frags fr = {0};
    lk_ids out = {0};
    loki_status st = partition(v, text, len, parse_special, &fr, err);
    if (st) goto done;
    if (add_bos && v->add_bos && v->bos_id >= 0 && (st = lk__ids_push(&out, v->bos_id, err))) goto done;
    /* llama.cpp: an SPM text fragment gets the space prefix at the start and
     * after every special token */
    bool prev_special = true;
    for (size_t i = 0; i < fr.n; i++) {
        const frag *f = &fr.p[i];
        if (f->id >= 0) {
            st = lk__ids_push(&out, f->id, err);
            prev_special = true;
        } else if (v->type == LK_VOCAB_SPM) {
            st = lk__spm_fragment(v, text + f->off, f->len, v->add_space_prefix && prev_special, &out, err);
            prev_special = false;
        } else {
            st = lk__bpe_fragment(v, text + f->off, f->len, &out, err);
        }
        if (st) goto done;
    }
    if (add_bos && v->add_eos && v->eos_id >= 0 && (st = lk__ids_push(&out, v->eos_id, err))) goto done;
    if (out.n > INT32_MAX) {
        st = lk_fail(err, LOKI_ERR_RANGE, "tokenize: %zu tokens do not fit in int32", out.n);
        goto done;
    }
    if (out.n > 0 && cap > 0) memcpy(ids, out.p, LK_MIN(out.n, (size_t)cap) * sizeof *ids);
    *n_out = (int32_t)out.n;
    if (out.n > (size_t)cap)
        st = lk_fail(err, LOKI_ERR_RANGE, "tokenize: the text needs %zu tokens but the buffer holds %d",
                     out.n, (int)cap);
done:
    free(fr.p);
    free(out.p);
    return st;
}

/* ---------------------------------------------------------- detokenize */

/* Bounded writer: counts every byte, stores those that fit. */
typedef struct sink {
    char *buf;
    int64_t cap, n;
} sink;

static void put(sink *s, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++, s->n++)
        if (s->n < s->cap) s->buf[s->n] = p[i];
}

/* Value of one hex digit, -1 if c is not one. */
static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Append token id's bytes; strip_space drops one leading space of an SPM
 * piece (the space the tokenizer prepended). Returns false for a bad id. */
static bool piece(const lk_vocab *v, int32_t id, bool special, bool strip_space, sink *s) {
    if (id < 0 || id >= v->n_tokens) return false;
    const lk_vocab_impl *im = v->impl;
    uint32_t len;
    const char *t = lk__tok_text(v, id, &len);
    switch (im->ttype[id]) {
    case LK_TOK_CONTROL:
    case LK_TOK_UNKNOWN:
        if (special) put(s, t, len);
        return true;
    case LK_TOK_USER_DEFINED:
        put(s, t, len);
        return true;
    case LK_TOK_BYTE:
        if (len == 6 && hexval(t[3]) >= 0 && hexval(t[4]) >= 0) {
            char b = (char)(hexval(t[3]) * 16 + hexval(t[4]));
            put(s, &b, 1);
        } else {
            put(s, t, len);
        }
        return true;
    case LK_TOK_NORMAL:
        break;
    default: /* unused / undefined: nothing, like llama.cpp */
        return true;
    }
    if (v->type == LK_VOCAB_BPE && im->byte_encode) {
        for (uint32_t i = 0; i < len;) {
            int cl;
            uint32_t cp = lk__utf8_decode(t + i, len - i, &cl);
            if (cp < 512 && im->cp_byte[cp] >= 0) {
                char b = (char)im->cp_byte[cp];
                put(s, &b, 1);
            } else {
                put(s, t + i, (size_t)cl); /* not a byte character: keep as is */
            }
            i += (uint32_t)cl;
        }
        return true;
    }
    uint32_t i = 0;
    bool first = true;
    while (i < len) {
        if (im->escape_spaces && len - i >= 3 && memcmp(t + i, "\xE2\x96\x81", 3) == 0) {
            if (!(first && strip_space)) put(s, " ", 1);
            i += 3;
        } else if (t[i] == ' ' && first && strip_space) {
            i++;
        } else {
            put(s, t + i, 1);
            i++;
        }
        first = false;
    }
    return true;
}

/* SPM: is a leading space of the piece after `prev` the prepended one? It is
 * after BOS and, since lk_tokenize prepends it there too, after any special
 * token; at the start of a sequence (prev < 0 in lk_detokenize) as well. */
static bool strip_after(const lk_vocab *v, int32_t prev) {
    if (v->type != LK_VOCAB_SPM || !v->add_space_prefix) return false;
    if (prev < 0 || prev >= v->n_tokens) return false;
    if (prev == v->bos_id) return true;
    int t = v->impl->ttype[prev];
    return t == LK_TOK_CONTROL || t == LK_TOK_USER_DEFINED || t == LK_TOK_UNKNOWN;
}

int32_t lk_token_to_piece(const lk_vocab *v, int32_t prev, int32_t id, bool special,
                          char *buf, int32_t cap) {
    if (!v || !v->impl) return -1;
    sink s = {buf, buf ? LK_MAX(cap, 0) : 0, 0};
    if (!piece(v, id, special, strip_after(v, prev), &s)) return -1;
    return s.n > INT32_MAX ? INT32_MAX : (int32_t)s.n;
}

int64_t lk_detokenize(const lk_vocab *v, const int32_t *ids, int32_t n, bool special,
                      char *buf, int64_t cap) {
    if (!v || !v->impl || n < 0 || (!ids && n > 0)) return -1;
    sink s = {buf, buf ? LK_MAX(cap, 0) : 0, 0};
    bool at_start_strip = v->type == LK_VOCAB_SPM && v->add_space_prefix;
    for (int32_t i = 0; i < n; i++) {
        bool strip = i == 0 ? at_start_strip : strip_after(v, ids[i - 1]);
        if (!piece(v, ids[i], special, strip, &s)) return -1;
    }
    if (s.cap > 0) buf[LK_MIN(s.n, s.cap - 1)] = '\0';
    return s.n;
}
