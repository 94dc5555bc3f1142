/*
 * strbuf.h - a growable NUL-terminated byte string (prompt text, rendered
 * chat templates, generated replies).
 *
 *   lk_strbuf b = {0};
 *   lk_strbuf_put(&b, s, n); lk_strbuf_puts(&b, "x");
 *   if (b.oom) ... out of memory (checked once, after many appends)
 *   lk_strbuf_free(&b);
 */
#ifndef LK_STRBUF_H
#define LK_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct lk_strbuf {
    char *p;      /* NUL-terminated once anything was appended; NULL before */
    size_t n;     /* bytes, not counting the NUL */
    size_t cap;   /* bytes allocated at p */
    bool oom;     /* an append failed: p holds what came before it */
} lk_strbuf;

/* Append len bytes of s (which may hold NULs). Returns false, and sets
 * b->oom, when memory runs out; after that every append is a no-op
 * returning false. */
bool lk_strbuf_put(lk_strbuf *b, const char *s, size_t len);

/* Append the C string s; as lk_strbuf_put. */
bool lk_strbuf_puts(lk_strbuf *b, const char *s);

/* Release the bytes; b is empty (and usable) again. */
void lk_strbuf_free(lk_strbuf *b);

#endif
