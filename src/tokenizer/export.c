/* export.c - vocabulary tables for writers (see export.h). */
#include "tokenizer/export.h"
#include "tokenizer/tok_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One merge of the table: its rank and its two parts. */
typedef struct merge_row {
    int64_t rank;
    int32_t left, right;
} merge_row;

/* qsort order: ascending merge rank. */
static int cmp_rank(const void *a, const void *b) {
    int64_t x = ((const merge_row *)a)->rank, y = ((const merge_row *)b)->rank;
    return (x > y) - (x < y);
}

loki_status lk_vocab_export_init(const lk_vocab *v, lk_vocab_export *out, loki_error *err) {
    lk_vocab_export e = {0};
    merge_row *rows = NULL;
    loki_status st = LOKI_OK;
    const lk_vocab_impl *im = v->impl;
    if (!im || v->n_tokens <= 0) return lk_fail(err, LOKI_ERR_ARG, "vocabulary is empty");
    e.n_tokens = v->n_tokens;
    e.text = lk_calloc((size_t)e.n_tokens, sizeof *e.text, err);
    e.type = lk_calloc((size_t)e.n_tokens, sizeof *e.type, err);
    e.score = lk_calloc((size_t)e.n_tokens, sizeof *e.score, err);
    if (!e.text || !e.type || !e.score) {
        st = LOKI_ERR_NOMEM;
        goto fail;
    }
    for (int32_t i = 0; i < e.n_tokens; i++) {
        uint32_t len;
        e.text[i] = lk__tok_text(v, i, &len);
        if (strlen(e.text[i]) != len) {
            st = lk_fail(err, LOKI_ERR_UNSUPPORTED, "token %d holds a NUL byte", (int)i);
            goto fail;
        }
        e.type[i] = im->ttype[i];
        e.score[i] = im->score[i];
    }
    /* merge table: key (left << 32 | right) -> value (rank << 32 | result) */
    const lk_u64map *mm = &im->merges;
    if (mm->n > 0) {
        rows = lk_malloc(mm->n * sizeof *rows, err);
        e.merges = lk_calloc(mm->n, sizeof *e.merges, err);
        if (!rows || !e.merges) {
            st = LOKI_ERR_NOMEM;
            goto fail;
        }
        size_t k = 0;
        for (size_t s = 0; s < mm->cap && k < mm->n; s++) {
            if (!mm->used[s]) continue;
            rows[k].rank = (int64_t)(mm->vals[s] >> 32);
            rows[k].left = (int32_t)(mm->keys[s] >> 32);
            rows[k].right = (int32_t)(mm->keys[s] & 0xffffffffu);
            k++;
        }
        qsort(rows, k, sizeof *rows, cmp_rank);
        for (size_t i = 0; i < k; i++) {
            uint32_t ll, rl;
            const char *l = lk__tok_text(v, rows[i].left, &ll), *r = lk__tok_text(v, rows[i].right, &rl);
            char *s = lk_malloc((size_t)ll + rl + 2, err);
            if (!s) {
                st = LOKI_ERR_NOMEM;
                goto fail;
            }
            snprintf(s, (size_t)ll + rl + 2, "%s %s", l, r);
            e.merges[e.n_merges++] = s;
        }
    }
    free(rows);
    *out = e;
    return LOKI_OK;
fail:
    free(rows);
    lk_vocab_export_free(&e);
    return st;
}

void lk_vocab_export_free(lk_vocab_export *e) {
    if (!e) return;
    for (int64_t i = 0; i < e->n_merges; i++) free(e->merges[i]);
    free(e->merges);
    free(e->text);
    free(e->type);
    free(e->score);
    memset(e, 0, sizeof *e);
}
