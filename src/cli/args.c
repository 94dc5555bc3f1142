/* args.c - option parsing for the subcommands (see args.h). */
#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void cli_print_help(const cli_spec *spec, FILE *f) {
    fprintf(f, "usage: %s\n\n%s\n\noptions:\n", spec->usage, spec->about);
    for (int i = 0; i < spec->n_opts; i++) {
        const cli_opt *o = &spec->opts[i];
        char lhs[64];
        snprintf(lhs, sizeof lhs, "%s%s%s %s", o->short_name ? o->short_name : "",
                 o->short_name ? ", " : "", o->long_name, o->kind == CLI_FLAG ? "" : o->metavar);
        fprintf(f, "  %-28s %s\n", lhs, o->help);
    }
    fprintf(f, "  %-28s %s\n", "-h, --help", "show this help");
}

static int set_value(const cli_spec *spec, const cli_opt *o, const char *name, const char *val) {
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case CLI_STR: *(const char **)o->dst = val; return 0;
    case CLI_INT: {
        long v = strtol(val, &end, 10);
        if (errno || !*val || *end || v < INT32_MIN || v > INT32_MAX) break;
        *(int32_t *)o->dst = (int32_t)v;
        return 0;
    }
    case CLI_U64: {
        if (*val == '-') break;
        unsigned long long v = strtoull(val, &end, 10);
        if (errno || !*val || *end) break;
        *(uint64_t *)o->dst = v;
        return 0;
    }
    case CLI_FLOAT: {
        float v = strtof(val, &end);
        if (errno || !*val || *end || !isfinite(v)) break;
        *(float *)o->dst = v;
        return 0;
    }
    case CLI_FLAG: return 0;
    }
    fprintf(stderr, "loki %s: invalid value '%s' for %s (expected %s)\n", spec->name, val, name,
            o->kind == CLI_FLOAT ? "a number" : o->kind == CLI_U64 ? "a non-negative integer" : "an integer");
    return 2;
}

int cli_parse(const cli_spec *spec, int argc, char **argv, const char **positional, int *n_positional) {
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cli_print_help(spec, stdout);
            return 1;
        }
        if (a[0] != '-' || !a[1]) {
            if (npos >= spec->max_positional) {
                fprintf(stderr, "loki %s: unexpected argument '%s' (see loki %s --help)\n", spec->name, a, spec->name);
                return 2;
            }
            positional[npos++] = a;
            continue;
        }
        /* --name=value form */
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const cli_opt *o = NULL;
        for (int j = 0; j < spec->n_opts && !o; j++) {
            const cli_opt *c = &spec->opts[j];
            if ((c->short_name && strlen(c->short_name) == nlen && !strncmp(c->short_name, a, nlen)) ||
                (strlen(c->long_name) == nlen && !strncmp(c->long_name, a, nlen)))
                o = c;
        }
        if (!o) {
            fprintf(stderr, "loki %s: unknown option '%.*s' (see loki %s --help)\n", spec->name, (int)nlen, a,
                    spec->name);
            return 2;
        }
        if (o->kind == CLI_FLAG) {
            if (eq) {
                fprintf(stderr, "loki %s: option %s takes no value\n", spec->name, o->long_name);
                return 2;
            }
            *(bool *)o->dst = true;
            continue;
        }
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!val) {
            fprintf(stderr, "loki %s: option %s needs a value (%s)\n", spec->name, a, o->metavar);
            return 2;
        }
        int rc = set_value(spec, o, a, val);
        if (rc) return rc;
    }
    if (n_positional) *n_positional = npos;
    return 0;
}
