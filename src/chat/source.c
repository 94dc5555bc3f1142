/*
 * source.c - where a model keeps its chat template (lk_chat_template_of_model,
 * see template.h): GGUF metadata, or the files of a Hugging Face directory.
 */
#define _POSIX_C_SOURCE 200809L
#include "chat/template.h"
#include "format/gguf.h"
#include "model/model.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* "<dir>/<name>" malloc'ed, or NULL (err set). */
static char *join(const char *dir, const char *name, loki_error *err) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = lk_malloc(n, err);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* The chat_template of a parsed tokenizer_config.json: a string, or a list
 * of {"name", "template"} objects from which "default" is taken. NULL if none. */
static const char *config_template(const cJSON *cfg) {
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    if (cJSON_IsString(ct)) return ct->valuestring;
    const cJSON *it;
    cJSON_ArrayForEach(it, ct) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
        const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(it, "template");
        if (cJSON_IsString(name) && strcmp(name->valuestring, "default") == 0 && cJSON_IsString(tpl))
            return tpl->valuestring;
    }
    return NULL;
}

loki_status lk_chat_template_from_config(const char *data, size_t size, const char *path, char **out,
                                         loki_error *err) {
    *out = NULL;
    cJSON *cfg = cJSON_ParseWithLength(data, size);
    loki_status st = LOKI_OK;
    if (!cfg || !cJSON_IsObject(cfg)) {
        st = lk_fail(err, LOKI_ERR_FORMAT, "%s: invalid JSON", path);
    } else {
        const char *t = config_template(cfg);
        if (t && !(*out = lk_strdup(t, err))) st = lk_fail(err, LOKI_ERR_NOMEM, "%s: out of memory copying "
                                                                "chat_template (%zu bytes)", path, strlen(t));
    }
    cJSON_Delete(cfg);
    return st;
}

/* Template of a Hugging Face directory (see template.h). */
static loki_status hf_template(const char *dir, char **out, loki_error *err) {
    loki_status st = LOKI_OK;
    char *path = NULL, *data = NULL;
    size_t size = 0;
    struct stat sb;
    if (!(path = join(dir, "chat_template.jinja", err))) return LOKI_ERR_NOMEM;
    if (stat(path, &sb) == 0) {
        st = lk_read_file(path, out, &size, err);
        goto done;
    }
    free(path);
    if (!(path = join(dir, "tokenizer_config.json", err))) return LOKI_ERR_NOMEM;
    if (stat(path, &sb) != 0) goto done; /* no config: no template */
    if ((st = lk_read_file(path, &data, &size, err))) goto done;
    st = lk_chat_template_from_config(data, size, path, out, err);
done:
    free(data);
    free(path);
    return st;
}

loki_status lk_chat_template_of_model(const struct loki_model *m, char **out, loki_error *err) {
    *out = NULL;
    if (m->gguf) {
        lk_gguf_str s;
        if (!lk_gguf_get_str(m->gguf, "tokenizer.chat_template", &s)) return LOKI_OK;
        if (!(*out = lk_strndup(s.ptr, (size_t)s.len, err))) return LOKI_ERR_NOMEM;
        return LOKI_OK;
    }
    if (strcmp(m->format, "hf") == 0 && m->path) return hf_template(m->path, out, err);
    return LOKI_OK; /* llama2.c checkpoints carry no template */
}
