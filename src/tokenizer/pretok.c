/*
 * pretok.c - byte-level BPE pre-tokenizers: the regex sequence per GGUF
 * `tokenizer.ggml.pre` name (the expressions llama.cpp's llm_tokenizer_bpe
 * uses), compiled with PCRE2 (UTF + UCP, so \p{L}, \p{N}, \s are Unicode
 * classes and need none of llama.cpp's hand-written matchers), and the split.
 *
 * Split semantics follow llama.cpp's unicode_regex_split: the regexes run in
 * order; each one runs separately inside every word the previous ones left
 * (so lookaheads see the end of the word as the end of the text), and both
 * its matches and the unmatched gaps between them become words.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/tok_impl.h"

#include <stdlib.h>
#include <string.h>

/* GPT-2's expression as llama.cpp writes it (no trailing `|\s+`: a lone
 * whitespace that is not matched ends up a gap word, which is the same). */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
/* Llama-3's expression, with llama.cpp's case-insensitive contractions
 * spelled out ((?i:'s) would also match U+017F for 's'). */
#define RE_LLAMA3                                                                          \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" \
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                           \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" \
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

typedef struct pre_def {
    const char *names; /* '|'-separated GGUF pre names */
    const char *re[5];
    bool ignore_merges;
    bool add_bos;
} pre_def;

static const pre_def k_pre[] = {
    {"default|", {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, false, false},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2", {RE_LLAMA3}, true, true},
    {"dbrx|smaug-bpe|glm4|chatglm-bpe", {RE_LLAMA3}, false, false},
    {"gpt-2|gpt2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|mpt|olmo|jais|trillion|exaone4|"
     "jina-v1-en|jina-v2-code|roberta-bpe|mellum|a.x-4.0|modern-bert",
     {RE_GPT2}, false, false},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}, false, false},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", {"\\p{N}", RE_GPT2}, false, false},
    {"deepseek-coder",
     {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+",
      "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}"},
     false, false},
    {"qwen2|deepseek-r1-qwen|stablelm2|megrez|hunyuan", {RE_QWEN2}, false, false},
    {"poro-chat|bloom|gpt3-finnish",
     {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+"}, false, false},
};

/* True if `name` is one of the '|'-separated names in list. */
static bool name_in(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list;;) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && memcmp(p, name, n) == 0) return true;
        if (!e) return false;
        p = e + 1;
    }
}

loki_status lk__pretok_add(lk_vocab *v, const char *pattern, loki_error *err) {
    lk_vocab_impl *im = v->impl;
    if (im->n_re >= LK_MAX_REGEX)
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "more than %d pre-tokenizer regexes", LK_MAX_REGEX);
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                                   &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return lk_fail(err, LOKI_ERR_FORMAT, "pre-tokenizer regex /%s/: %s at offset %zu", pattern,
                       (const char *)msg, (size_t)eo);
    }
    /* JIT is an optimisation only; matching falls back to the interpreter. */
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    im->re[im->n_re++] = re;
    return LOKI_OK;
}

loki_status lk__pretok_from_name(lk_vocab *v, const char *pre, bool *add_bos_default,
                                 loki_error *err) {
    for (size_t i = 0; i < LK_ARRAY_LEN(k_pre); i++) {
        if (!name_in(k_pre[i].names, pre)) continue;
        for (size_t k = 0; k < LK_ARRAY_LEN(k_pre[i].re) && k_pre[i].re[k]; k++) {
            loki_status st = lk__pretok_add(v, k_pre[i].re[k], err);
            if (st) return st;
        }
        v->impl->ignore_merges = k_pre[i].ignore_merges;
        if (k_pre[i].add_bos) *add_bos_default = true;
        return LOKI_OK;
    }
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, "pre-tokenizer '%s' is not supported", pre);
}

void lk__pretok_free(lk_vocab_impl *im) {
    for (int i = 0; i < im->n_re; i++) pcre2_code_free((pcre2_code *)im->re[i]);
    im->n_re = 0;
}

loki_status lk__spans_push(lk_spans *s, size_t off, size_t len, loki_error *err) {
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        size_t *no = realloc(s->off, ncap * sizeof *no);
        if (!no) return lk_fail(err, LOKI_ERR_NOMEM, "out of memory splitting text");
        s->off = no;
        size_t *nl = realloc(s->len, ncap * sizeof *nl);
        if (!nl) return lk_fail(err, LOKI_ERR_NOMEM, "out of memory splitting text");
        s->len = nl;
        s->cap = ncap;
    }
    s->off[s->n] = off;
    s->len[s->n] = len;
    s->n++;
    return LOKI_OK;
}

void lk__spans_free(lk_spans *s) {
    free(s->off);
    free(s->len);
    memset(s, 0, sizeof *s);
}

/* Split one word text[off..off+len) with re, appending matches and gaps. */
static loki_status split_one(pcre2_code *re, pcre2_match_data *md, const char *text, size_t off,
                             size_t len, lk_spans *out, loki_error *err) {
    PCRE2_SPTR subj = (PCRE2_SPTR)(text + off);
    size_t pos = 0, gap = 0; /* gap: start of text not yet emitted */
    loki_status st;
    while (pos < len) {
        int rc = pcre2_match(re, subj, len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(re, subj, len, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return lk_fail(err, LOKI_ERR_RANGE, "pre-tokenizer regex failed: %s", (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* empty match: nothing to cut; step one character */
            pos = ms + (size_t)lk_utf8_len((unsigned char)text[off + ms]);
            continue;
        }
        if (ms > gap && (st = lk__spans_push(out, off + gap, ms - gap, err))) return st;
        if ((st = lk__spans_push(out, off + ms, me - ms, err))) return st;
        gap = pos = me;
    }
    if (gap < len && (st = lk__spans_push(out, off + gap, len - gap, err))) return st;
    return LOKI_OK;
}

loki_status lk__pretok_split(const lk_vocab *v, const char *text, size_t len, lk_spans *out,
                             loki_error *err) {
    const lk_vocab_impl *im = v->impl;
    if (len == 0) return LOKI_OK;
    if (im->n_re == 0) return lk__spans_push(out, 0, len, err);
    lk_spans a = {0}, b = {0};
    pcre2_match_data *md = NULL;
    loki_status st = lk__spans_push(&a, 0, len, err);
    if (st) goto done;
    for (int r = 0; r < im->n_re; r++) {
        pcre2_code *re = (pcre2_code *)im->re[r];
        pcre2_match_data_free(md);
        md = pcre2_match_data_create_from_pattern(re, NULL);
        if (!md) {
            st = lk_fail(err, LOKI_ERR_NOMEM, "out of memory for regex match data");
            goto done;
        }
        bool last = r == im->n_re - 1;
        lk_spans *dst = last ? out : &b;
        b.n = 0;
        for (size_t i = 0; i < a.n; i++) {
            st = split_one(re, md, text, a.off[i], a.len[i], dst, err);
            if (st) goto done;
        }
        if (!last) {
            lk_spans t = a;
            a = b;
            b = t;
        }
    }
done:
    pcre2_match_data_free(md);
    lk__spans_free(&a);
    lk__spans_free(&b);
    return st;
}
