/*
 * strbuf.c - growable byte strings (strbuf.h).
 */
#include "core/strbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

bool lk_strbuf_put(lk_strbuf *b, const char *s, size_t len) {
    if (b->oom) return false;
    if (len > SIZE_MAX - 1 - b->n) return b->oom = true, false;
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + len + 1) cap = cap > SIZE_MAX / 2 ? b->n + len + 1 : cap * 2;
        char *q = realloc(b->p, cap);
        if (!q) return b->oom = true, false;
        b->p = q;
        b->cap = cap;
    }
    if (len) memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
    return true;
}

bool lk_strbuf_puts(lk_strbuf *b, const char *s) { return lk_strbuf_put(b, s, strlen(s)); }

void lk_strbuf_free(lk_strbuf *b) {
    free(b->p);
    *b = (lk_strbuf){0};
}
