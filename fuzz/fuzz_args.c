/* fuzz_args.c - the CLI option parser (cli_parse, src/cli/args.c) with a
 * table holding every option kind plus the attention options every
 * generation command takes, then cli_attn_params on what was parsed
 * (without --pca: a harness must not open paths chosen by its input).
 * Input: NUL-separated arguments (argv[0] is "run"), at most 64. */
#include "cli/args.h"
#include "cli/attn_args.h"
#include "fuzz_util.h"
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = fuzz_strndup(data, size);
    char *argv[65];
    int argc = 0;
    argv[argc++] = "run";
    for (size_t i = 0; i <= size && argc < 65;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    const char *model = NULL, *prompt = NULL;
    int32_t n = 0;
    uint64_t seed = 0;
    float temp = 0;
    bool chat = false;
    cli_attn_args a;
    cli_attn_args_init(&a);
    cli_opt opts[6 + CLI_ATTN_N_OPTS] = {
        {"-m", "--model", CLI_STR, &model, "FILE", "model"},
        {"-p", "--prompt", CLI_STR, &prompt, "TEXT", "prompt"},
        {"-n", "--n-predict", CLI_INT, &n, "N", "tokens"},
        {NULL, "--seed", CLI_U64, &seed, "S", "seed"},
        {NULL, "--temp", CLI_FLOAT, &temp, "T", "temperature"},
        {NULL, "--chat", CLI_FLAG, &chat, "", "chat"},
    };
    int n_opts = 6 + cli_attn_opts(&a, opts + 6);
    cli_spec spec = {"run", "loki run -m MODEL", "fuzz", opts, n_opts, 2};
    const char *pos[2];
    int npos = 0;
    if (cli_parse(&spec, argc, argv, pos, &npos) == 0) {
        loki_model m;
        memset(&m, 0, sizeof m);
        m.hp.n_layer = 2, m.hp.n_head = 4, m.hp.n_head_kv = 2, m.hp.head_dim = 64, m.hp.n_embd = 256;
        a.pca = NULL;
        loki_attn_params p;
        loki_pca *pca = NULL;
        if (cli_attn_params("run", &a, NULL, &m, &p, &pca) == 0) {
            char desc[256];
            cli_attn_describe(&p, desc, sizeof desc);
        }
        loki_pca_free(pca);
    }
    free(buf);
    return 0;
}
