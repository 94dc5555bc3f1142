/*
 * hf.c - vocabulary from a Hugging Face tokenizer.json (+ tokenizer_config.json).
 *
 * Supported: model.type "BPE" in two flavours.
 *  - byte-level (GPT-2 / Llama-3 style): pre_tokenizer ByteLevel, possibly
 *    in a Sequence after Split regexes (behavior "Isolated"), which are used
 *    verbatim with PCRE2; ranked merges.
 *  - SentencePiece style (Llama-2 / TinyLlama / Mistral tokenizer.json):
 *    normalizer Prepend("▁") + Replace(" ", "▁") or a Metaspace
 *    pre-tokenizer, byte_fallback. Mapped to LK_VOCAB_SPM with merges by
 *    rank (tokenizer.json has no scores), which is exactly HF's BPE.
 *    Metaspace's `split` is not modelled: the whole fragment is one word.
 * Added tokens: special ones become CONTROL, others USER_DEFINED, with their
 * lstrip/rstrip. BOS/EOS addition comes from the TemplateProcessing
 * post-processor, overridden by tokenizer_config.json's add_bos_token /
 * add_eos_token when present. Normalizers other than the SentencePiece ones
 * and NFC are rejected; NFC is accepted but not applied (text assumed NFC).
 */
#include "tokenizer/tok_impl.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* HF's ByteLevel(use_regex=true) expression. */
#define RE_HF_BYTELEVEL \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_HF_LLAMA3                                                                         \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+" \
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define SPM_SPACE "\xE2\x96\x81"
/* nesting of pre_tokenizer Sequences accepted (real files use 1) */
#define HF_MAX_SEQUENCE_DEPTH 8

/* o[key] if it is a string, else NULL. */
static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

/* True only if o[key] is the JSON literal true. */
static bool jtrue(const cJSON *o, const char *key) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* True if o["type"] equals type. */
static bool jtype(const cJSON *o, const char *type) {
    const char *t = jstr(o, "type");
    return t && strcmp(t, type) == 0;
}

/* First component named `type` in o or in its Sequence list `list_key`. */
static const cJSON *find_component(const cJSON *o, const char *list_key, const char *type) {
    if (!cJSON_IsObject(o)) return NULL;
    if (jtype(o, type)) return o;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, list_key);
    const cJSON *it;
    cJSON_ArrayForEach(it, list) if (jtype(it, type)) return it;
    return NULL;
}

/* Token text from a config value that is a string or {"content": ...}. */
static const char *token_name(const cJSON *x) {
    if (cJSON_IsString(x)) return x->valuestring;
    if (cJSON_IsObject(x)) return jstr(x, "content");
    return NULL;
}

/* Id of the token whose text is s (NULL-safe), -1 if none. */
static int32_t lookup(const lk_vocab *v, const char *s) {
    return s ? lk_strmap_get(&v->impl->tok_map, s, strlen(s)) : -1;
}

/* Append the regexes of one pre-tokenizer component (recursing into Sequence). */
static loki_status add_pretok(lk_vocab *v, const cJSON *pt, int depth, const char *path, loki_error *err) {
    loki_status st;
    if (!pt || cJSON_IsNull(pt)) return LOKI_OK;
    const char *type = jstr(pt, "type");
    if (!type) return lk_fail(err, LOKI_ERR_FORMAT, "%s: pre_tokenizer without a type", path);
    if (strcmp(type, "Sequence") == 0) {
        /* real files nest one level; the bound keeps the recursion shallow */
        if (depth >= HF_MAX_SEQUENCE_DEPTH)
            return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: pre_tokenizer Sequences nested deeper than %d", path,
                           HF_MAX_SEQUENCE_DEPTH);
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers"))
            if ((st = add_pretok(v, it, depth + 1, path, err))) return st;
        return LOKI_OK;
    }
    if (strcmp(type, "Split") == 0) {
        const char *beh = jstr(pt, "behavior");
        if (!beh || strcmp(beh, "Isolated") != 0 || jtrue(pt, "invert"))
            return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: Split pre-tokenizer with behavior '%s'%s is not supported",
                           path, beh ? beh : "?", jtrue(pt, "invert") ? " (inverted)" : "");
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(pt, "pattern");
        const char *re = jstr(pat, "Regex");
        if (re) return lk__pretok_add(v, re, err);
        const char *lit = jstr(pat, "String");
        if (!lit) return lk_fail(err, LOKI_ERR_FORMAT, "%s: Split pre-tokenizer without a pattern", path);
        size_t n = strlen(lit);
        char *esc = lk_malloc(2 * n + 1, err); /* escape every ASCII punctuation byte */
        if (!esc) return LOKI_ERR_NOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)lit[i];
            if (c < 0x80 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
                esc[k++] = '\\';
            esc[k++] = (char)c;
        }
        esc[k] = '\0';
        st = lk__pretok_add(v, esc, err);
        free(esc);
        return st;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(pt, "use_regex");
        if (jtrue(pt, "add_prefix_space")) v->impl->bpe_prefix_space = true;
        if (!cJSON_IsFalse(ur)) return lk__pretok_add(v, RE_HF_BYTELEVEL, err);
        return LOKI_OK;
    }
    if (strcmp(type, "Digits") == 0)
        return lk__pretok_add(v, jtrue(pt, "individual_digits") ? "\\p{N}" : "\\p{N}+", err);
    if (strcmp(type, "Metaspace") == 0) return LOKI_OK; /* handled as SentencePiece style */
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: pre-tokenizer '%s' is not supported", path, type);
}

/* Reject normalizers we cannot reproduce; report SentencePiece-style ones. */
static loki_status check_normalizer(const cJSON *nz, bool *prepend, bool *replace, const char *path,
                                    loki_error *err) {
    if (!nz || cJSON_IsNull(nz)) return LOKI_OK;
    const char *type = jstr(nz, "type");
    if (!type) return lk_fail(err, LOKI_ERR_FORMAT, "%s: normalizer without a type", path);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(nz, "normalizers")) {
            loki_status st = check_normalizer(it, prepend, replace, path, err);
            if (st) return st;
        }
        return LOKI_OK;
    }
    if (strcmp(type, "Prepend") == 0) {
        const char *p = jstr(nz, "prepend");
        if (p && strcmp(p, SPM_SPACE) == 0) {
            *prepend = true;
            return LOKI_OK;
        }
    } else if (strcmp(type, "Replace") == 0) {
        const char *s = jstr(cJSON_GetObjectItemCaseSensitive(nz, "pattern"), "String");
        const char *c = jstr(nz, "content");
        if (s && c && strcmp(s, " ") == 0 && strcmp(c, SPM_SPACE) == 0) {
            *replace = true;
            return LOKI_OK;
        }
    } else if (strcmp(type, "NFC") == 0) {
        return LOKI_OK;
    }
    return lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: normalizer '%s' is not supported", path, type);
}

/* BOS/EOS from a TemplateProcessing post-processor (possibly in a Sequence). */
static void read_template(lk_vocab *v, const cJSON *pp) {
    const cJSON *tp = find_component(pp, "processors", "TemplateProcessing");
    if (!tp) return;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(tp, "single");
    int n = cJSON_GetArraySize(single);
    if (n <= 0) return;
    const cJSON *first = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, 0), "SpecialToken");
    const cJSON *last = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, n - 1), "SpecialToken");
    int32_t id;
    if (first && (id = lookup(v, jstr(first, "id"))) >= 0) {
        v->bos_id = id;
        v->add_bos = true;
    }
    if (last && n > 1 && (id = lookup(v, jstr(last, "id"))) >= 0) {
        v->eos_id = id;
        v->add_eos = true;
    }
}

/* Apply tokenizer_config.json overrides (add_bos_token, add_eos_token and
 * the bos/eos/unk/pad token names) from its text data[0..size) when it parses
 * (optional file: NULL or invalid JSON means "no overrides"). */
static void apply_config(lk_vocab *v, const char *data, size_t size) {
    if (!data) return;
    cJSON *c = cJSON_ParseWithLength(data, size);
    if (!c) return;
    const cJSON *x;
    int32_t id;
    if (cJSON_IsBool(x = cJSON_GetObjectItemCaseSensitive(c, "add_bos_token"))) v->add_bos = cJSON_IsTrue(x);
    if (cJSON_IsBool(x = cJSON_GetObjectItemCaseSensitive(c, "add_eos_token"))) v->add_eos = cJSON_IsTrue(x);
    if ((id = lookup(v, token_name(cJSON_GetObjectItemCaseSensitive(c, "bos_token")))) >= 0) v->bos_id = id;
    if ((id = lookup(v, token_name(cJSON_GetObjectItemCaseSensitive(c, "eos_token")))) >= 0) v->eos_id = id;
    if ((id = lookup(v, token_name(cJSON_GetObjectItemCaseSensitive(c, "unk_token")))) >= 0) v->unk_id = id;
    if ((id = lookup(v, token_name(cJSON_GetObjectItemCaseSensitive(c, "pad_token")))) >= 0) v->pad_id = id;
    cJSON_Delete(c);
}

loki_status lk_vocab_from_hf(lk_vocab *v, const char *dir, loki_error *err) {
    if (!dir) return lk_fail(err, LOKI_ERR_ARG, "tokenizer directory is NULL");
    size_t pn = strlen(dir) + 32, size = 0, csize = 0;
    char *path = lk_malloc(pn, err), *cpath = lk_malloc(pn, err), *data = NULL, *cdata = NULL;
    loki_status st = LOKI_ERR_NOMEM;
    if (path && cpath) {
        snprintf(path, pn, "%s/tokenizer.json", dir);
        snprintf(cpath, pn, "%s/tokenizer_config.json", dir);
        if (!(st = lk_read_file(path, &data, &size, err))) {
            /* optional file: absent or unreadable means "no overrides" */
            if (lk_read_file(cpath, &cdata, &csize, NULL) != LOKI_OK) cdata = NULL;
            st = lk_vocab_from_hf_json(v, data, size, cdata, csize, path, err);
        }
    }
    free(cdata);
    free(data);
    free(cpath);
    free(path);
    return st;
}

loki_status lk_vocab_from_hf_json(lk_vocab *v, const char *data, size_t size, const char *config,
                                  size_t config_size, const char *path, loki_error *err) {
    cJSON *root = NULL;
    lk_vocab tmp;
    memset(&tmp, 0, sizeof tmp);
    loki_status st;
    if (!path) path = "tokenizer.json";
    const char *end = NULL;
    root = data ? cJSON_ParseWithLengthOpts(data, size, &end, false) : NULL;
    if (!root || !cJSON_IsObject(root)) {
        st = lk_fail(err, LOKI_ERR_FORMAT, "%s: invalid JSON near byte %zu", path,
                     end ? (size_t)(end - data) : (size_t)0);
        goto fail;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const char *mtype = jstr(model, "type");
    if (!cJSON_IsObject(model)) {
        st = lk_fail(err, LOKI_ERR_FORMAT, "%s: no \"model\" object", path);
        goto fail;
    }
    if (mtype ? strcmp(mtype, "BPE") != 0 : !merges) {
        st = lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: tokenizer model '%s' is not supported (only BPE)", path,
                     mtype ? mtype : "?");
        goto fail;
    }
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
        st = lk_fail(err, LOKI_ERR_FORMAT, "%s: model.vocab must be an object and model.merges an array", path);
        goto fail;
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    int64_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= INT32_MAX) {
            st = lk_fail(err, LOKI_ERR_FORMAT, "%s: vocab entry '%s' has a bad id", path, it->string);
            goto fail;
        }
        n = LK_MAX(n, (int64_t)it->valueint + 1);
    }
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= INT32_MAX || !jstr(it, "content")) {
            st = lk_fail(err, LOKI_ERR_FORMAT, "%s: added_tokens entry without a valid id and content", path);
            goto fail;
        }
        n = LK_MAX(n, (int64_t)id->valueint + 1);
    }
    /* the per-token arrays are sized by the largest id: an id the file
     * cannot back (each entry takes bytes of it, so n <= size) is refused
     * before they are allocated */
    if (n > (int64_t)size) {
        st = lk_fail(err, LOKI_ERR_FORMAT, "%s: token id %lld is beyond what the %zu-byte file can back", path,
                     (long long)n - 1, size);
        goto fail;
    }
    if ((st = lk__vocab_alloc(&tmp, (int32_t)n, path, err))) goto fail;
    lk_vocab_impl *im = tmp.impl;
    for (int32_t i = 0; i < tmp.n_tokens; i++) im->ttype[i] = LK_TOK_UNUSED; /* holes */

    bool prepend = false, replace = false;
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if ((st = check_normalizer(cJSON_GetObjectItemCaseSensitive(root, "normalizer"), &prepend, &replace, path, err)))
        goto fail;
    const cJSON *meta = find_component(pt, "pretokenizers", "Metaspace");
    bool spm = replace || meta || jtrue(model, "byte_fallback");
    if (meta) {
        const char *scheme = jstr(meta, "prepend_scheme");
        prepend = prepend || (scheme ? strcmp(scheme, "never") != 0 : !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(meta, "add_prefix_space")));
    }
    bool byte_fallback = jtrue(model, "byte_fallback");
    cJSON_ArrayForEach(it, vocab) {
        const char *s = it->string;
        size_t l = strlen(s);
        int type = LK_TOK_NORMAL;
        if (spm && byte_fallback && l == 6 && strncmp(s, "<0x", 3) == 0 && s[5] == '>') type = LK_TOK_BYTE;
        if ((st = lk__vocab_set(&tmp, it->valueint, s, l, 0.0f, type, err))) goto fail;
    }
    cJSON_ArrayForEach(it, added) {
        int32_t id = cJSON_GetObjectItemCaseSensitive(it, "id")->valueint;
        const char *s = jstr(it, "content");
        int type = jtrue(it, "special") ? LK_TOK_CONTROL : LK_TOK_USER_DEFINED;
        if ((st = lk__vocab_set(&tmp, id, s, strlen(s), 0.0f, type, err))) goto fail;
        im->flags[id] = (uint8_t)((jtrue(it, "lstrip") ? LK_TOKF_LSTRIP : 0) | (jtrue(it, "rstrip") ? LK_TOKF_RSTRIP : 0));
    }
    tmp.type = spm ? LK_VOCAB_SPM : LK_VOCAB_BPE;
    im->mode = LK_MERGE_RANK;
    im->byte_encode = !spm;
    im->escape_spaces = true;
    im->ignore_merges = jtrue(model, "ignore_merges");
    tmp.add_space_prefix = spm && prepend;
    if ((st = lk__vocab_finish(&tmp, path, err))) goto fail;
    int32_t unk = lookup(&tmp, jstr(model, "unk_token"));
    if (unk >= 0) {
        tmp.unk_id = unk;
        if (im->ttype[unk] == LK_TOK_NORMAL || im->ttype[unk] == LK_TOK_CONTROL) im->ttype[unk] = LK_TOK_UNKNOWN;
    }

    if ((st = lk_u64map_init(&im->merges, (size_t)cJSON_GetArraySize(merges), err))) goto fail;
    int64_t rank = 0;
    cJSON_ArrayForEach(it, merges) {
        const char *l, *r;
        size_t ll, rl;
        if (cJSON_IsString(it)) {
            const char *s = it->valuestring, *sp = s[0] ? strchr(s + 1, ' ') : NULL;
            if (!sp) {
                st = lk_fail(err, LOKI_ERR_FORMAT, "%s: merge %lld \"%s\" has no space", path, (long long)rank, s);
                goto fail;
            }
            l = s; ll = (size_t)(sp - s); r = sp + 1; rl = strlen(r);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            l = cJSON_GetArrayItem(it, 0)->valuestring; ll = strlen(l);
            r = cJSON_GetArrayItem(it, 1)->valuestring; rl = strlen(r);
        } else {
            st = lk_fail(err, LOKI_ERR_FORMAT, "%s: merge %lld is neither \"a b\" nor [\"a\", \"b\"]", path, (long long)rank);
            goto fail;
        }
        if ((st = lk__vocab_add_merge(&tmp, l, ll, r, rl, rank, err))) goto fail;
        rank++;
    }
    im->n_merges = rank;

    if (spm) {
        snprintf(tmp.pre, sizeof tmp.pre, "default");
    } else {
        if (!find_component(pt, "pretokenizers", "ByteLevel") &&
            !find_component(cJSON_GetObjectItemCaseSensitive(root, "decoder"), "decoders", "ByteLevel")) {
            st = lk_fail(err, LOKI_ERR_UNSUPPORTED, "%s: BPE without ByteLevel or SentencePiece conventions is not supported", path);
            goto fail;
        }
        if ((st = add_pretok(&tmp, pt, 0, path, err))) goto fail;
        const cJSON *split = find_component(pt, "pretokenizers", "Split");
        const char *re = split ? jstr(cJSON_GetObjectItemCaseSensitive(split, "pattern"), "Regex") : NULL;
        snprintf(tmp.pre, sizeof tmp.pre, "%s", re && strcmp(re, RE_HF_LLAMA3) == 0 ? "llama-bpe"
                                                : im->n_re == 1 && !split ? "gpt-2" : "hf");
    }
    read_template(&tmp, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    apply_config(&tmp, config, config_size);
    if (tmp.add_bos && tmp.bos_id < 0) tmp.add_bos = false;
    if (tmp.add_eos && tmp.eos_id < 0) tmp.add_eos = false;
    cJSON_Delete(root);
    *v = tmp;
    return LOKI_OK;
fail:
    cJSON_Delete(root);
    lk_vocab_free(&tmp);
    return st;
}
