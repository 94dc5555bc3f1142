/*
 * unicode.c - the little Unicode the tokenizers need: UTF-8 encode/decode and
 * GPT-2's bytes_to_unicode table, which maps every byte to a printable code
 * point so byte-level BPE vocabularies can store arbitrary bytes as text.
 */
#include "tokenizer/tok_impl.h"

#include <string.h>

void lk__bytes_to_unicode(lk_vocab_impl *im) {
    /* Printable Latin-1 bytes map to themselves; the other 68 bytes map, in
     * byte order, to 256, 257, ... (GPT-2 encoder.py bytes_to_unicode). */
    int next = 256;
    for (int i = 0; i < 512; i++) im->cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        int cp = keep ? b : next++;
        im->byte_cp[b] = (uint16_t)cp;
        im->cp_byte[cp] = (int16_t)b;
    }
}

int lk__utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

uint32_t lk__utf8_decode(const char *s, size_t n, int *len) {
    const unsigned char *u = (const unsigned char *)s;
    int l = lk_utf8_len(u[0]);
    if ((size_t)l > n) l = 1; /* truncated: treat the lead byte alone */
    *len = l;
    switch (l) {
    case 2: return ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
    case 3: return ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
    case 4:
        return ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
               ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
    default: return u[0];
    }
}
