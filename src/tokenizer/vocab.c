/*
 * vocab.c - building a vocabulary: the shared token tables, and the loaders
 * for GGUF metadata (tokenizer.ggml.*) and llama2.c tokenizer .bin files.
 * The Hugging Face tokenizer.json loader lives in hf.c.
 */
#include "tokenizer/tok_impl.h"

#include "format/gguf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- building */

loki_status lk__vocab_alloc(lk_vocab *v, int32_t n, const char *input, loki_error *err) {
    memset(v, 0, sizeof *v);
    v->bos_id = v->eos_id = v->unk_id = v->pad_id = -1;
    if (n <= 0) return lk_fail(err, LOKI_ERR_FORMAT, "%s: vocabulary has %d tokens", input, (int)n);
    lk_vocab_impl *im = lk_calloc_for(1, sizeof *im, input, "the vocabulary", err);
    if (!im) return LOKI_ERR_NOMEM;
    v->impl = im;
    v->n_tokens = n;
    im->off = lk_calloc_for((size_t)n, sizeof *im->off, input, "the token offsets", err);
    im->len = lk_calloc_for((size_t)n, sizeof *im->len, input, "the token lengths", err);
    im->score = lk_calloc_for((size_t)n, sizeof *im->score, input, "the token scores", err);
    im->ttype = lk_calloc_for((size_t)n, 1, input, "the token types", err);
    im->flags = lk_calloc_for((size_t)n, 1, input, "the token flags", err);
    if (!im->off || !im->len || !im->score || !im->ttype || !im->flags) return LOKI_ERR_NOMEM;
    for (int32_t i = 0; i < n; i++) im->ttype[i] = LK_TOK_NORMAL;
    for (int b = 0; b < 256; b++) im->byte_tok[b] = -1;
    lk__bytes_to_unicode(im);
    im->escape_spaces = true;
    im->byte_encode = true;
    return LOKI_OK;
}

loki_status lk__vocab_set(lk_vocab *v, int32_t id, const char *s, size_t len, float score,
                          int type, loki_error *err) {
    lk_vocab_impl *im = v->impl;
    if (len > UINT32_MAX / 2) return lk_fail(err, LOKI_ERR_FORMAT, "token %d is too long", (int)id);
    if (im->text_size + len + 1 > im->text_cap) {
        size_t ncap = im->text_cap ? im->text_cap : 4096;
        while (ncap < im->text_size + len + 1) ncap *= 2;
        char *nt = realloc(im->text, ncap);
        if (!nt) return lk_fail(err, LOKI_ERR_NOMEM, "out of memory for token texts");
        im->text = nt;
        im->text_cap = ncap;
    }
    if (im->text_size > UINT32_MAX - len - 1)
        return lk_fail(err, LOKI_ERR_FORMAT, "token texts exceed 4 GiB");
    memcpy(im->text + im->text_size, s, len);
    im->text[im->text_size + len] = '\0';
    im->off[id] = (uint32_t)im->text_size;
    im->len[id] = (uint32_t)len;
    im->text_size += len + 1;
    im->score[id] = score;
    im->ttype[id] = (uint8_t)type;
    return LOKI_OK;
}

/* Order for the special-token list: longer texts first (llama.cpp tries them
 * in this order), then by id so the result does not depend on qsort. */
static int cmp_special(const void *a, const void *b, void *ctx) {
    const lk_vocab_impl *im = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (im->len[x] != im->len[y]) return im->len[x] > im->len[y] ? -1 : 1;
    return (x > y) - (x < y);
}

loki_status lk__vocab_finish(lk_vocab *v, const char *what, loki_error *err) {
    lk_vocab_impl *im = v->impl;
    loki_status st = lk_strmap_init(&im->tok_map, (size_t)v->n_tokens, err);
    if (st) return st;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if (im->len[i] == 0) continue; /* never produced by any text */
        st = lk_strmap_put(&im->tok_map, im->text + im->off[i], im->len[i], i, NULL, err);
        if (st) return st;
    }
    for (int b = 0; b < 256; b++) {
        char buf[8];
        int n;
        if (v->type == LK_VOCAB_BPE && im->byte_encode) {
            n = lk__utf8_encode(im->byte_cp[b], buf);
        } else {
            n = snprintf(buf, sizeof buf, "<0x%02X>", b);
        }
        im->byte_tok[b] = lk_strmap_get(&im->tok_map, buf, (size_t)n);
    }
    int32_t ns = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        int t = im->ttype[i];
        if ((t == LK_TOK_CONTROL || t == LK_TOK_USER_DEFINED || t == LK_TOK_UNKNOWN) && im->len[i] > 0) ns++;
    }
    if (ns > 0) {
        im->special = lk_malloc((size_t)ns * sizeof *im->special, err);
        if (!im->special) return LOKI_ERR_NOMEM;
        for (int32_t i = 0; i < v->n_tokens; i++) {
            int t = im->ttype[i];
            if ((t == LK_TOK_CONTROL || t == LK_TOK_USER_DEFINED || t == LK_TOK_UNKNOWN) && im->len[i] > 0)
                im->special[im->n_special++] = i;
        }
        qsort_r(im->special, (size_t)ns, sizeof *im->special, cmp_special, im);
    }
    int32_t *ids[] = {&v->bos_id, &v->eos_id, &v->unk_id, &v->pad_id};
    const char *names[] = {"bos", "eos", "unknown", "padding"};
    for (size_t k = 0; k < LK_ARRAY_LEN(ids); k++) {
        if (*ids[k] >= v->n_tokens)
            return lk_fail(err, LOKI_ERR_FORMAT, "%s: %s token id %d is outside the vocabulary (%d tokens)",
                           what, names[k], (int)*ids[k], (int)v->n_tokens);
        if (*ids[k] < -1) *ids[k] = -1;
    }
    if (v->add_bos && v->bos_id < 0) v->add_bos = false; /* nothing to add */
    if (v->add_eos && v->eos_id < 0) v->add_eos = false;
    return LOKI_OK;
}

loki_status lk__vocab_add_merge(lk_vocab *v, const char *l, size_t ll, const char *r,
                                size_t rl, int64_t rank, loki_error *err) {
    lk_vocab_impl *im = v->impl;
    int32_t a = lk_strmap_get(&im->tok_map, l, ll);
    int32_t b = lk_strmap_get(&im->tok_map, r, rl);
    if (a < 0 || b < 0) return LOKI_OK;
    char stackbuf[256];
    char *joined = ll + rl <= sizeof stackbuf ? stackbuf : lk_malloc(ll + rl, err);
    if (!joined) return LOKI_ERR_NOMEM;
    memcpy(joined, l, ll);
    memcpy(joined + ll, r, rl);
    int32_t c = lk_strmap_get(&im->tok_map, joined, ll + rl);
    if (joined != stackbuf) free(joined);
    if (c < 0) return LOKI_OK;
    if (rank > INT32_MAX) return lk_fail(err, LOKI_ERR_FORMAT, "too many merges");
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint64_t val = ((uint64_t)rank << 32) | (uint32_t)c;
    return lk_u64map_put(&im->merges, key, val, NULL, err);
}

void lk_vocab_free(lk_vocab *v) {
    if (!v) return;
    lk_vocab_impl *im = v->impl;
    if (im) {
        free(im->text);
        free(im->off);
        free(im->len);
        free(im->score);
        free(im->ttype);
        free(im->flags);
        lk_strmap_free(&im->tok_map);
        lk_u64map_free(&im->merges);
        free(im->special);
        lk__pretok_free(im);
        free(im);
    }
    memset(v, 0, sizeof *v);
    v->bos_id = v->eos_id = v->unk_id = v->pad_id = -1;
}

/* ----------------------------------------------------------------- GGUF */

/* Optional token id key: keeps *id when the key is absent; an id outside
 * the vocabulary is ignored as llama.cpp does (it warns and keeps the default). */
static void gguf_tok_id(const lk_gguf *g, const char *key, int32_t n, int32_t *id) {
    int64_t x;
    if (lk_gguf_get_i64(g, key, &x) && x >= 0 && x < n) *id = (int32_t)x;
}

loki_status lk_vocab_from_gguf(lk_vocab *v, const lk_gguf *g, loki_error *err) {
    const char *path = g && g->path ? g->path : "gguf";
    char model[64] = "", pre[64] = "", name[256] = "";
    lk_vocab tmp;
    memset(&tmp, 0, sizeof tmp);
    loki_status st;
    if (!lk_gguf_get_cstr(g, "tokenizer.ggml.model", model, sizeof model))
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: no tokenizer.ggml.model key", path);
    lk_gguf_get_cstr(g, "tokenizer.ggml.pre", pre, sizeof pre);
    lk_gguf_get_cstr(g, "general.name", name, sizeof name);
    lk_vocab_type type;
    if (strcmp(model, "llama") == 0) type = LK_VOCAB_SPM;
    else if (strcmp(model, "gpt2") == 0) type = LK_VOCAB_BPE;
    else
        return lk_fail(err, LOKI_ERR_UNSUPPORTED,
                       "%s: tokenizer model '%s' is not supported (only 'llama' and 'gpt2')", path, model);

    const lk_gguf_kv *toks = lk_gguf_find(g, "tokenizer.ggml.tokens");
    if (!toks || toks->type != LK_GGUF_ARRAY || toks->arr_type != LK_GGUF_STRING)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: tokenizer.ggml.tokens missing or not a string array", path);
    if (toks->arr_n == 0 || toks->arr_n > INT32_MAX)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries", path,
                       (unsigned long long)toks->arr_n);
    int32_t n = (int32_t)toks->arr_n;
    const lk_gguf_kv *scores = lk_gguf_find(g, "tokenizer.ggml.scores");
    const lk_gguf_kv *types = lk_gguf_find(g, "tokenizer.ggml.token_type");
    if (scores && (scores->type != LK_GGUF_ARRAY || scores->arr_n < (uint64_t)n ||
                   scores->arr_type == LK_GGUF_STRING || scores->arr_type == LK_GGUF_ARRAY))
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: tokenizer.ggml.scores is not a numeric array of %d", path, (int)n);
    if (types && (types->type != LK_GGUF_ARRAY || types->arr_n < (uint64_t)n ||
                  types->arr_type == LK_GGUF_STRING || types->arr_type == LK_GGUF_ARRAY))
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: tokenizer.ggml.token_type is not an integer array of %d", path, (int)n);

    st = lk__vocab_alloc(&tmp, n, path, err);
    if (st) goto fail;
    tmp.type = type;
    snprintf(tmp.pre, sizeof tmp.pre, "%s", pre[0] ? pre : "default");
    lk_vocab_impl *im = tmp.impl;
    for (int32_t i = 0; i < n; i++) {
        float sc = scores ? (float)lk_gguf_arr_f64(scores, (uint64_t)i) : 0.0f;
        int t = types ? (int)lk_gguf_arr_i64(types, (uint64_t)i) : LK_TOK_NORMAL;
        if (t < LK_TOK_NORMAL || t > LK_TOK_BYTE) t = 0; /* undefined: decodes to "" */
        st = lk__vocab_set(&tmp, i, toks->arr_str[i].ptr, (size_t)toks->arr_str[i].len, sc, t, err);
        if (st) goto fail;
    }

    /* Defaults as in llama.cpp's llama_vocab::impl::load. */
    bool add_bos_default = false;
    if (type == LK_VOCAB_SPM) {
        tmp.bos_id = 1; tmp.eos_id = 2; tmp.unk_id = 0;
        tmp.add_space_prefix = true;
        add_bos_default = true;
        im->mode = LK_MERGE_SCORE;
    } else {
        tmp.bos_id = 11; tmp.eos_id = 11; /* llama.cpp's (Falcon) defaults */
        im->mode = LK_MERGE_RANK;
    }
    if (tmp.bos_id >= n) tmp.bos_id = -1; /* defaults outside a small vocabulary */
    if (tmp.eos_id >= n) tmp.eos_id = -1;
    if (tmp.unk_id >= n) tmp.unk_id = -1;
    bool b;
    if (lk_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &b)) tmp.add_space_prefix = b;
    gguf_tok_id(g, "tokenizer.ggml.bos_token_id", n, &tmp.bos_id);
    gguf_tok_id(g, "tokenizer.ggml.eos_token_id", n, &tmp.eos_id);
    gguf_tok_id(g, "tokenizer.ggml.unknown_token_id", n, &tmp.unk_id);
    gguf_tok_id(g, "tokenizer.ggml.padding_token_id", n, &tmp.pad_id);

    st = lk__vocab_finish(&tmp, path, err);
    if (st) goto fail;

    if (type == LK_VOCAB_BPE) {
        const lk_gguf_kv *merges = lk_gguf_find(g, "tokenizer.ggml.merges");
        if (!merges || merges->type != LK_GGUF_ARRAY || merges->arr_type != LK_GGUF_STRING) {
            st = lk_fail(err, LOKI_ERR_FORMAT, "%s: tokenizer.ggml.merges missing or not a string array", path);
            goto fail;
        }
        st = lk_u64map_init(&im->merges, (size_t)merges->arr_n, err);
        if (st) goto fail;
        for (uint64_t i = 0; i < merges->arr_n; i++) {
            const char *s = merges->arr_str[i].ptr;
            size_t len = (size_t)merges->arr_str[i].len;
            /* split at the first space after the first byte (llama.cpp) */
            const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
            if (!sp) continue;
            st = lk__vocab_add_merge(&tmp, s, (size_t)(sp - s), sp + 1, len - (size_t)(sp - s) - 1,
                                     (int64_t)i, err);
            if (st) goto fail;
        }
        im->n_merges = (int64_t)merges->arr_n;
        st = lk__pretok_from_name(&tmp, pre[0] ? pre : "default", &add_bos_default, err);
        if (st) {
            lk_fail_prefix(err, "%s", path);
            goto fail;
        }
    }
    tmp.add_bos = add_bos_default;
    tmp.add_eos = false;
    if (lk_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b)) tmp.add_bos = b;
    if (lk_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b)) tmp.add_eos = b;
    if (tmp.add_bos && tmp.bos_id < 0) tmp.add_bos = false;
    if (tmp.add_eos && tmp.eos_id < 0) tmp.add_eos = false;

    /* llama.cpp marks phi-3's special tokens right-stripping (by model name);
     * without it "<|user|>\nhi" would keep the newline as text. */
    for (char *c = name; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    if (strstr(name, "phi-3") || strstr(name, "phi3")) {
        for (int32_t k = 0; k < im->n_special; k++) im->flags[im->special[k]] |= LK_TOKF_RSTRIP;
        const char *on[] = {"</s>"}, *off[] = {"<unk>", "<s>", "<|endoftext|>"};
        int32_t id = lk_strmap_get(&im->tok_map, on[0], strlen(on[0]));
        if (id >= 0) im->flags[id] |= LK_TOKF_RSTRIP;
        for (size_t k = 0; k < LK_ARRAY_LEN(off); k++) {
            id = lk_strmap_get(&im->tok_map, off[k], strlen(off[k]));
            if (id >= 0) im->flags[id] &= (uint8_t)~LK_TOKF_RSTRIP;
        }
    }
    *v = tmp;
    return LOKI_OK;
fail:
    lk_vocab_free(&tmp);
    return st;
}

/* ------------------------------------------------------------- llama2.c */

loki_status lk_vocab_from_llama2c(lk_vocab *v, const char *path, int32_t n_vocab, loki_error *err) {
    char *data = NULL;
    size_t size = 0;
    lk_vocab tmp;
    memset(&tmp, 0, sizeof tmp);
    if (n_vocab <= 0) return lk_fail(err, LOKI_ERR_ARG, "%s: vocabulary size %d must be positive", path, (int)n_vocab);
    loki_status st = lk_read_file(path, &data, &size, err);
    if (st) return st;
    if (size < 4) {
        st = lk_fail(err, LOKI_ERR_FORMAT, "%s: too short for a llama2.c tokenizer (%zu bytes)", path, size);
        goto fail;
    }
    int32_t max_len;
    memcpy(&max_len, data, 4);
    if (max_len <= 0 || max_len > (1 << 20)) {
        st = lk_fail(err, LOKI_ERR_FORMAT, "%s: bad max_token_length %d", path, (int)max_len);
        goto fail;
    }
    /* each token takes at least 8 bytes (score, length): the vocabulary
     * size the checkpoint declares must fit in this file before the
     * per-token arrays are allocated for it */
    if ((size_t)n_vocab > (size - 4) / 8) {
        st = lk_fail(err, LOKI_ERR_FORMAT, "%s: truncated: %d tokens need at least %llu bytes, the file has %zu",
                     path, (int)n_vocab, 4 + 8ull * (unsigned long long)n_vocab, size);
        goto fail;
    }
    st = lk__vocab_alloc(&tmp, n_vocab, path, err);
    if (st) goto fail;
    size_t pos = 4;
    for (int32_t i = 0; i < n_vocab; i++) {
        float score;
        int32_t len;
        if (size - pos < 8) {
            st = lk_fail(err, LOKI_ERR_FORMAT, "%s: truncated at token %d of %d", path, (int)i, (int)n_vocab);
            goto fail;
        }
        memcpy(&score, data + pos, 4);
        memcpy(&len, data + pos + 4, 4);
        pos += 8;
        if (len < 0 || len > max_len || (size_t)len > size - pos) {
            st = lk_fail(err, LOKI_ERR_FORMAT, "%s: token %d has bad length %d", path, (int)i, (int)len);
            goto fail;
        }
        const char *s = data + pos;
        int type = LK_TOK_NORMAL;
        if (len == 6 && memcmp(s, "<0x", 3) == 0 && isxdigit((unsigned char)s[3]) &&
            isxdigit((unsigned char)s[4]) && s[5] == '>')
            type = LK_TOK_BYTE;
        if (i == 0) type = LK_TOK_UNKNOWN;
        if (i == 1 || i == 2) type = LK_TOK_CONTROL;
        st = lk__vocab_set(&tmp, i, s, (size_t)len, score, type, err);
        if (st) goto fail;
        pos += (size_t)len;
    }
    tmp.type = LK_VOCAB_SPM;
    snprintf(tmp.pre, sizeof tmp.pre, "llama2c");
    /* run.c: BOS=1, EOS=2; encode() adds BOS when asked and a " " dummy prefix */
    tmp.unk_id = 0;
    tmp.bos_id = n_vocab > 1 ? 1 : -1;
    tmp.eos_id = n_vocab > 2 ? 2 : -1;
    tmp.add_bos = true;
    tmp.add_space_prefix = true;
    tmp.impl->mode = LK_MERGE_SCORE;
    tmp.impl->escape_spaces = false;
    tmp.impl->llama2c = true;
    st = lk__vocab_finish(&tmp, path, err);
    if (st) goto fail;
    free(data);
    *v = tmp;
    return LOKI_OK;
fail:
    free(data);
    lk_vocab_free(&tmp);
    return st;
}
