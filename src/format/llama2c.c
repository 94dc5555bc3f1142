/* llama2c.c - llama2.c checkpoint header (see llama2c.h). */
#include "format/llama2c.h"

#include <string.h>

/* Upper bounds that keep every size product far below 2^63 and reject
 * random files: no real llama2.c-format model comes near them. */
#define L2C_MAX_DIM (1 << 16)
#define L2C_MAX_LAYERS 1024
#define L2C_MAX_VOCAB (1 << 22)
#define L2C_MAX_SEQ (1 << 22)

/* Header fields from the first 28 bytes (little-endian host assumed). */
static void l2c_read_ints(const void *head, int32_t v[7]) { memcpy(v, head, 7 * sizeof(int32_t)); }

/* Consistency of the seven header ints; false on anything implausible. */
static bool l2c_check(const int32_t v[7]) {
    int32_t dim = v[0], hidden = v[1], L = v[2], nh = v[3], nkv = v[4], vocab = v[5], seq = v[6];
    if (dim <= 0 || dim > L2C_MAX_DIM || hidden <= 0 || hidden > 4 * L2C_MAX_DIM) return false;
    if (L <= 0 || L > L2C_MAX_LAYERS || nh <= 0 || nh > dim || nkv <= 0 || nkv > nh) return false;
    if (vocab == 0 || vocab < -L2C_MAX_VOCAB || vocab > L2C_MAX_VOCAB) return false;
    if (seq <= 0 || seq > L2C_MAX_SEQ) return false;
    if (dim % nh != 0 || nh % nkv != 0 || (dim / nh) % 2 != 0) return false;
    return true;
}

bool lk_l2c_plausible(const void *head, size_t n) {
    if (!head || n < LK_L2C_HEADER_BYTES) return false;
    int32_t v[7];
    l2c_read_ints(head, v);
    return l2c_check(v);
}

loki_status lk_l2c_parse(const lk_mapped_file *f, const char *path, lk_l2c_config *cfg,
                         loki_error *err) {
    if (f->size < LK_L2C_HEADER_BYTES)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: file too small for a llama2.c header "
                       "(%zu bytes, truncated?)", path, f->size);
    int32_t v[7];
    l2c_read_ints(f->data, v);
    if (!l2c_check(v))
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: implausible llama2.c header (dim %d, hidden %d, "
                       "layers %d, heads %d, kv heads %d, vocab %d, seq_len %d)", path, (int)v[0],
                       (int)v[1], (int)v[2], (int)v[3], (int)v[4], (int)v[5], (int)v[6]);
    lk_l2c_config c;
    memset(&c, 0, sizeof(c));
    c.dim = v[0]; c.hidden_dim = v[1]; c.n_layers = v[2]; c.n_heads = v[3];
    c.n_kv_heads = v[4]; c.vocab_size = v[5]; c.seq_len = v[6];
    c.shared_classifier = c.vocab_size > 0;
    c.n_vocab = c.vocab_size > 0 ? c.vocab_size : -c.vocab_size;
    c.head_size = c.dim / c.n_heads;
    c.kv_dim = c.dim / c.n_heads * c.n_kv_heads;
    /* sizes in floats; bounds in l2c_check keep these below 2^50 */
    uint64_t d = (uint64_t)c.dim, h = (uint64_t)c.hidden_dim, L = (uint64_t)c.n_layers;
    uint64_t kv = (uint64_t)c.kv_dim, nv = (uint64_t)c.n_vocab;
    uint64_t o = LK_L2C_HEADER_BYTES;
    c.off_embd = o;      o += 4 * nv * d;
    c.off_rms_att = o;   o += 4 * L * d;
    c.off_wq = o;        o += 4 * L * d * d;
    c.off_wk = o;        o += 4 * L * kv * d;
    c.off_wv = o;        o += 4 * L * kv * d;
    c.off_wo = o;        o += 4 * L * d * d;
    c.off_rms_ffn = o;   o += 4 * L * d;
    c.off_w1 = o;        o += 4 * L * h * d;
    c.off_w2 = o;        o += 4 * L * d * h;
    c.off_w3 = o;        o += 4 * L * h * d;
    c.off_rms_final = o; o += 4 * d;
    o += 2 * 4 * (uint64_t)c.seq_len * (uint64_t)(c.head_size / 2); /* freq_cis real + imag */
    c.off_wcls = c.shared_classifier ? c.off_embd : o;
    if (!c.shared_classifier) o += 4 * nv * d;
    c.file_size = o;
    if ((uint64_t)f->size < o)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: llama2.c checkpoint truncated: the header (dim "
                       "%d, layers %d, vocab %d) implies %llu bytes but the file has %zu", path,
                       (int)c.dim, (int)c.n_layers, (int)c.vocab_size, (unsigned long long)o,
                       f->size);
    if ((uint64_t)f->size > o)
        return lk_fail(err, LOKI_ERR_FORMAT, "%s: llama2.c checkpoint has %llu trailing bytes "
                       "beyond the %llu the header implies (wrong format or version?)", path,
                       (unsigned long long)((uint64_t)f->size - o), (unsigned long long)o);
    *cfg = c;
    return LOKI_OK;
}
