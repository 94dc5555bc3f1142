/*
 * test_quant.c - the ggml block types of core/quant.h (Q4_0, Q4_1, Q5_0,
 * Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K):
 *  1. hand-built blocks with known bytes decode to the values worked out by
 *     hand from the layouts (exact: integer codes times exact fp16 scales),
 *     including the 6-bit packed scales and mins of Q3_K/Q4_K/Q5_K;
 *  2. random rows quantized and dequantized stay within the per-element
 *     error bounds stated in core/quant.c (bound() below restates them);
 *  3. the GGUF reader sizes every type, refuses a truncated quantized
 *     tensor and names an unknown or unsupported type id;
 *  4. dequantization equals gguf-py's (the `gguf` package from PyPI, run by
 *     tests/quant_ref.py through python3) on random blocks: exactly when all
 *     fp16 scales are 1 (pure integer decoding), and within 2^-21 of the
 *     block's largest |value| with random fp16 scales and on our own
 *     quantized output (both compute (d * sc) * q - dmin * m in float32, so
 *     the difference is expected to be 0; the tolerance covers an FMA a
 *     compiler might contract). Skipped, with a SKIP line, when no python3
 *     can import gguf and numpy (scripts/get-gguf-py.sh fetches the wheel).
 */
#include "test.h"

#include "core/quant.h"
#include "format/gguf.h"

#include <stddef.h>
#include <unistd.h>

static const lk_dtype k_types[] = {LK_DTYPE_Q4_0, LK_DTYPE_Q4_1, LK_DTYPE_Q5_0, LK_DTYPE_Q5_1, LK_DTYPE_Q2_K,
                                   LK_DTYPE_Q3_K, LK_DTYPE_Q4_K, LK_DTYPE_Q5_K, LK_DTYPE_Q6_K};
#define N_TYPES ((int)LK_ARRAY_LEN(k_types))

/* ------------------------------------------------------------ 1. hand-built */

/* Decode `blk` (one block of t) and compare with want (elems); exact. */
static void expect_block(lk_dtype t, const void *blk, const float *want) {
    float got[LK_QK_K];
    const int be = lk_dtype_block_elems(t);
    lk_row_to_f32(t, blk, got, be);
    int bad = 0;
    for (int e = 0; e < be; e++)
        if (got[e] != want[e]) {
            if (bad++ < 4) fprintf(stderr, "  %s element %d: got %g want %g\n", lk_dtype_name(t), e, got[e], want[e]);
        }
    CHECKF(bad == 0, "%s hand-built block: %d elements differ", lk_dtype_name(t), bad);
}

static void fill(float *w, int from, int to, float v) {
    for (int e = from; e < to; e++) w[e] = v;
}

static void test_hand_built(void) {
    float w[LK_QK_K];
    { /* Q4_0: d = 2; w = 2 (q - 8); qs[e] low nibble = element e, high = e + 16 */
        lk_block_q4_0 b = {.d = 0x4000};
        memset(b.qs, 0x88, 16);
        b.qs[0] = 0x9F;
        b.qs[15] = 0x08;
        fill(w, 0, 32, 0.0f);
        w[0] = 14; w[16] = 2; w[15] = 0; w[31] = -16;
        expect_block(LK_DTYPE_Q4_0, &b, w);
    }
    { /* Q4_1: d = 0.5, m = -1 */
        lk_block_q4_1 b = {.d = 0x3800, .m = 0xBC00};
        b.qs[3] = 0xA5;
        fill(w, 0, 32, -1.0f);
        w[3] = 1.5f; w[19] = 4.0f;
        expect_block(LK_DTYPE_Q4_1, &b, w);
    }
    { /* Q5_0: d = 1; qh bits 0 and 31 set: elements 0 and 31 get +16 */
        lk_block_q5_0 b = {.d = 0x3C00, .qh = {0x01, 0, 0, 0x80}};
        b.qs[0] = 0x3F;
        b.qs[15] = 0xF0;
        fill(w, 0, 32, -16.0f);
        w[0] = 15; w[16] = -13; w[15] = -16; w[31] = 15;
        expect_block(LK_DTYPE_Q5_0, &b, w);
    }
    { /* Q5_1: d = 1, m = 0.25; qh bit 9 */
        lk_block_q5_1 b = {.d = 0x3C00, .m = 0x3400, .qh = {0, 0x02, 0, 0}};
        b.qs[9] = 0x71;
        fill(w, 0, 32, 0.25f);
        w[9] = 17.25f; w[25] = 7.25f;
        expect_block(LK_DTYPE_Q5_1, &b, w);
    }
    { /* Q2_K: d = 1, dmin = 0.5; scales byte = m << 4 | sc */
        lk_block_q2_k b = {.d = 0x3C00, .dmin = 0x3800};
        b.scales[0] = 0x21;  /* sub 0: sc 1, m 2 */
        b.scales[5] = 0x13;  /* sub 5: sc 3, m 1 */
        b.scales[15] = 0xF7; /* sub 15: sc 7, m 15 */
        b.qs[0] = 0x1B;      /* e0 = 3, e32 = 2, e64 = 1, e96 = 0 (subs 0, 2, 4, 6) */
        b.qs[16] = 0x20;     /* bits 4-5 of byte 16: e80 (sub 5) = 2 */
        b.qs[63] = 0xC0;     /* bits 6-7 of byte 63: e255 (sub 15) = 3 */
        fill(w, 0, LK_QK_K, 0.0f);
        fill(w, 0, 16, -1.0f);
        fill(w, 80, 96, -0.5f);
        fill(w, 240, 256, -7.5f);
        w[0] = 2.0f;     /* 1*3 - 0.5*2 */
        w[80] = 5.5f;    /* 3*2 - 0.5*1 */
        w[255] = 13.5f;  /* 7*3 - 0.5*15 */
        expect_block(LK_DTYPE_Q2_K, &b, w);
    }
    { /* Q3_K: d = 0.5; 6-bit scale codes (value = code - 32): sub 0 code 33,
       * sub 13 code 5, sub 10 code 63, all others 0 (-32); q = low 2 bits,
       * minus 4 where the hmask bit is clear */
        lk_block_q3_k b = {.d = 0x3800};
        memset(b.hmask, 0xFF, 32);
        b.scales[0] = 0x01;        /* sub 0 low 4 bits 1 */
        b.scales[8] = 0x02;        /* sub 0 high 2 bits 2 (bits 0-1) */
        b.scales[5] = 0x50;        /* sub 13 low 4 bits 5 (high nibble of byte 13-8) */
        b.scales[2] = 0xF0;        /* sub 10 low 4 bits 15 */
        b.scales[10] = 0x30;       /* sub 10 high 2 bits 3 (byte 8 + 10%4, bits 2*(10/4)=4-5) */
        b.qs[0] = 0x03;            /* e0 low = 3 */
        b.qs[1] = 0x02;            /* e1 low = 2 */
        b.hmask[1] &= (uint8_t)~1; /* e1: bit 0 of hmask[1] clear -> 2 - 4 = -2 */
        b.qs[48] = 0x10;           /* e208 (h1, j2, l16): bits 4-5 of qs[32+16] = 1 */
        b.hmask[16] &= (uint8_t)~(1 << 6); /* e208: bit 208/32 = 6 clear -> 1 - 4 = -3 */
        b.qs[47] = 0x0C;           /* e175 (h1, j1, l15): bits 2-3 of qs[32+15] = 3 */
        fill(w, 0, LK_QK_K, 0.0f);
        w[0] = 1.5f;     /* 0.5 * 1 * 3 */
        w[1] = -1.0f;    /* 0.5 * 1 * -2 */
        w[208] = 40.5f;  /* 0.5 * -27 * -3 */
        w[175] = 46.5f;  /* 0.5 * 31 * 3 */
        expect_block(LK_DTYPE_Q3_K, &b, w);
    }
    /* Q4_K/Q5_K scales for sc = {1,2,3,4,33,47,63,16}, m = {0,5,0,0,17,0,62,1},
     * packed by hand: bytes 0-3 sc[0..3] | (sc[4..7] >> 4) << 6, bytes 4-7
     * m[0..3] | (m[4..7] >> 4) << 6, bytes 8-11 sc[4..7] & 15 | (m[4..7] & 15) << 4 */
    static const uint8_t k_scales[12] = {0x81, 0x82, 0xC3, 0x44, 0x40, 0x05, 0xC0, 0x00, 0x11, 0x0F, 0xEF, 0x10};
    static const uint8_t k_sc[8] = {1, 2, 3, 4, 33, 47, 63, 16}, k_m[8] = {0, 5, 0, 0, 17, 0, 62, 1};
    for (int s = 0; s < 8; s++) {
        uint8_t sc, m;
        lk_quant_k_scale_min(k_scales, s, &sc, &m);
        CHECKF(sc == k_sc[s] && m == k_m[s], "k scale %d: sc %d m %d, want %d %d", s, sc, m, k_sc[s], k_m[s]);
    }
    { /* Q4_K: d = 1, dmin = 2 */
        lk_block_q4_k b = {.d = 0x3C00, .dmin = 0x4000};
        memcpy(b.scales, k_scales, 12);
        b.qs[64] = 0x5A;      /* e128 (sub 4) low nibble 10; e160 (sub 5) high nibble 5 */
        b.qs[127] = 0x0F;     /* e223 (sub 6, c 3, l 31) = 15 */
        b.qs[3] = 0x70;       /* e35 (sub 1, c 0, k 1, l 3) = 7 */
        for (int s = 0; s < 8; s++) fill(w, 32 * s, 32 * s + 32, -2.0f * k_m[s]);
        w[128] = 296.0f;      /* 33*10 - 2*17 */
        w[160] = 235.0f;      /* 47*5 */
        w[223] = 821.0f;      /* 63*15 - 2*62 */
        w[35] = 4.0f;         /* 2*7 - 2*5 */
        expect_block(LK_DTYPE_Q4_K, &b, w);
        /* Q5_K: the same plus high bits qh[0] bit 4 (e128), qh[31] bits 6, 7 (e223, e255) */
        lk_block_q5_k c = {.d = 0x3C00, .dmin = 0x4000};
        memcpy(c.scales, k_scales, 12);
        memcpy(c.qs, b.qs, 128);
        c.qh[0] = 0x10;
        c.qh[31] = 0xC0;
        w[128] = 824.0f;      /* 33*26 - 34 */
        w[223] = 1829.0f;     /* 63*31 - 124 */
        w[255] = 254.0f;      /* 16*16 - 2*1 */
        expect_block(LK_DTYPE_Q5_K, &c, w);
    }
    { /* Q6_K: d = 0.25, int8 scales; q = (ql nibble | qh 2 bits << 4) - 32 */
        lk_block_q6_k b = {.d = 0x3400};
        b.scales[0] = 1;
        b.scales[3] = -2;
        b.scales[15] = 127;
        b.ql[0] = 0x0F; b.qh[0] = 0x03;   /* e0: 63 - 32 = 31 */
        b.ql[63] = 0x05; b.qh[31] = 0x08; /* e63 (h0, j1, l31): 5 | 2 << 4 = 37 -> 5 */
        b.ql[122] = 0x90; b.qh[58] = 0x40; /* e250 (h1, j3, l26): 9 | 1 << 4 = 25 -> -7 */
        fill(w, 0, LK_QK_K, 0.0f);
        fill(w, 0, 16, -8.0f);
        fill(w, 48, 64, 16.0f);
        fill(w, 240, 256, -1016.0f);
        w[0] = 7.75f; w[63] = -2.5f; w[250] = -222.25f;
        expect_block(LK_DTYPE_Q6_K, &b, w);
    }
}

/* ------------------------------------------------------------ 2. round trip */

/* Error bound of quant.c for element e of the block x (elems be) of type t. */
static double bound(lk_dtype t, const float *x, int e) {
    const int be = lk_dtype_block_elems(t);
    double amax = 0, lo = x[0], hi = x[0];
    for (int i = 0; i < be; i++) { amax = fmax(amax, fabs(x[i])); lo = fmin(lo, x[i]); hi = fmax(hi, x[i]); }
    const double slack = 1e-6 * amax + 1e-7; /* float32 arithmetic, fp16 subnormal steps */
    switch (t) {
    case LK_DTYPE_Q4_0: return 1.01 * amax / 8 + slack;
    case LK_DTYPE_Q5_0: return 1.01 * amax / 16 + slack;
    case LK_DTYPE_Q4_1: return 1.01 * (hi - lo) / 30 + ldexp(fabs(lo) + fabs(hi), -10) + slack;
    case LK_DTYPE_Q5_1: return 1.01 * (hi - lo) / 62 + ldexp(fabs(lo) + fabs(hi), -10) + slack;
    case LK_DTYPE_Q2_K: case LK_DTYPE_Q4_K: case LK_DTYPE_Q5_K: {
        const int nsub = t == LK_DTYPE_Q2_K ? 16 : 8, len = LK_QK_K / nsub;
        const int nmax = t == LK_DTYPE_Q2_K ? 3 : t == LK_DTYPE_Q4_K ? 15 : 31, smax = t == LK_DTYPE_Q2_K ? 15 : 63;
        double A = 0, R = 0, rs = 0;
        for (int s = 0; s < nsub; s++) {
            double l = 0, h = x[s * len];
            for (int i = s * len; i < (s + 1) * len; i++) { l = fmin(l, x[i]); h = fmax(h, x[i]); }
            A = fmax(A, -l);
            R = fmax(R, h - l);
            if (s == e / len) rs = h - l;
        }
        const double a = 1.001 * A / smax;
        return 1.001 * ((rs + a / 2) / (2 * nmax) + (R + a / 2) / (2.0 * nmax * smax) + a / 2) + slack;
    }
    case LK_DTYPE_Q3_K: case LK_DTYPE_Q6_K: {
        const int qmax = t == LK_DTYPE_Q3_K ? 3 : 31, smax = t == LK_DTYPE_Q3_K ? 31 : 127;
        double as = 0;
        for (int i = e / 16 * 16; i < e / 16 * 16 + 16; i++) as = fmax(as, fabs(x[i]));
        return 1.001 * (as / (2 * qmax) + amax / (2.0 * qmax * smax)) + slack;
    }
    default: return 0;
    }
}

#define ROW 2048 /* 8 K-quant super-blocks, 64 legacy blocks */

/* Row kind k of random test data (ROW floats). */
static void make_row(int k, float *x, uint64_t *seed) {
    switch (k % 6) {
    case 0: test_fill_random(x, ROW, -1.0f, 1.0f, seed); break;
    case 1: test_fill_random(x, ROW, 0.5f, 2.0f, seed); break;     /* all positive */
    case 2: test_fill_random(x, ROW, -3.0f, -1.0f, seed); break;   /* all negative */
    case 3:                                                           /* outliers */
        test_fill_random(x, ROW, -0.05f, 0.05f, seed);
        for (int i = 0; i < ROW; i += 97) x[i] *= 300.0f;
        break;
    case 4:                                                           /* zero and constant blocks */
        test_fill_random(x, ROW, -1e-3f, 1e-3f, seed);
        fill(x, 0, 512, 0.0f);
        fill(x, 512, 1024, 0.7f);
        fill(x, 1024, 1280, -0.3f);
        break;
    default: test_fill_random(x, ROW, -100.0f, 60.0f, seed); break; /* large, off-centre */
    }
}

static void test_round_trip(void) {
    uint64_t seed = 0x51ED2701ull;
    float *x = malloc(sizeof(float) * ROW), *y = malloc(sizeof(float) * ROW);
    uint8_t *q = malloc(lk_dtype_row_bytes(LK_DTYPE_Q2_K, ROW) * 4 + 4096);
    for (int ti = 0; ti < N_TYPES; ti++) {
        const lk_dtype t = k_types[ti];
        const int be = lk_dtype_block_elems(t);
        int bad = 0;
        double worst = 0, se = 0, sx = 0;
        for (int k = 0; k < 60; k++) {
            make_row(k, x, &seed);
            lk_row_from_f32(t, x, q, ROW);
            lk_row_to_f32(t, q, y, ROW);
            for (int i = 0; i < ROW; i++) {
                const double err = fabs((double)y[i] - x[i]), b = bound(t, x + i / be * be, i % be);
                worst = fmax(worst, err / b);
                se += err * err;
                sx += (double)x[i] * x[i];
                if (!(err <= b) && bad++ < 3)
                    fprintf(stderr, "  %s row kind %d element %d: x %g got %g err %g bound %g\n",
                            lk_dtype_name(t), k % 6, i, x[i], y[i], err, b);
            }
        }
        printf("%s: round trip max err/bound %.3f, relative rms error %.4f\n", lk_dtype_name(t), worst,
               sqrt(se / sx));
        CHECKF(bad == 0, "%s: %d elements beyond the stated bound", lk_dtype_name(t), bad);
    }
    free(x);
    free(y);
    free(q);
}

/* ------------------------------------------------------------ 3. GGUF reader */

/* Offset in buf (n) of tensor `name`'s dtype field in its tensor info (1-d). */
static size_t dtype_field(const uint8_t *buf, size_t n, const char *name) {
    const size_t len = strlen(name);
    for (size_t i = 8; i + len + 16 < n; i++) {
        uint64_t l;
        memcpy(&l, buf + i - 8, 8);
        if (l == len && !memcmp(buf + i, name, len)) return i + len + 4 + 8 * 2; /* n_dims, ne[0], ne[1] */
    }
    return 0;
}

static void test_gguf_reader(void) {
    char path[] = "/tmp/loki_test_quant_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    lk_gguf_writer *w = NULL;
    CHECK_OK(lk_gguf_writer_init(&w, NULL));
    if (!w) return;
    lk_gguf_writer_add_str(w, "general.architecture", "llama");
    float x[512 * 3];
    uint64_t seed = 7;
    test_fill_random(x, LK_ARRAY_LEN(x), -1.0f, 1.0f, &seed);
    uint8_t *bufs[N_TYPES];
    for (int ti = 0; ti < N_TYPES; ti++) {
        const lk_dtype t = k_types[ti];
        const int64_t ne[4] = {512, 3, 1, 1};
        bufs[ti] = malloc(lk_dtype_row_bytes(t, 512) * 3);
        lk_row_from_f32(t, x, bufs[ti], 512 * 3);
        char name[32];
        snprintf(name, sizeof name, "w.%s", lk_dtype_name(t));
        CHECK_OK(lk_gguf_writer_add_tensor(w, name, t, 2, ne, bufs[ti]));
    }
    loki_error err = {0};
    CHECK_OK(lk_gguf_writer_write(w, path, &err));
    lk_gguf_writer_free(w);
    lk_gguf g;
    CHECKF(lk_gguf_open(path, &g, &err) == LOKI_OK, "%s", err.msg);
    for (int ti = 0; ti < N_TYPES && g.tensors; ti++) {
        const lk_dtype t = k_types[ti];
        const lk_tensor *tt = &g.tensors[ti];
        const size_t want = (size_t)(3 * 512 / lk_dtype_block_elems(t)) * lk_dtype_block_bytes(t);
        CHECKF(tt->dtype == t && tt->nbytes == want && !memcmp(tt->data, bufs[ti], want),
               "%s: read back dtype %d, %zu bytes (want %zu)", lk_dtype_name(t), (int)tt->dtype, tt->nbytes, want);
    }
    if (g.tensors) lk_gguf_close(&g);
    size_t n = 0;
    uint8_t *file = test_read_all(path, &n);
    /* truncated: the last tensor (q6_k, 1260 bytes) loses its last 40 (the
     * writer pads the file to the 32-byte alignment, so 1 byte may be padding) */
    test_write_all(path, file, n - 40);
    CHECK(lk_gguf_open(path, &g, &err) == LOKI_ERR_FORMAT);
    CHECKF(strstr(err.msg, "w.q6_k") && strstr(err.msg, "out of bounds"), "%s", err.msg);
    /* an unsupported ggml type (iq2_xxs = 16) and an unknown future id are named */
    const size_t at = dtype_field(file, n, "w.q4_k");
    CHECK(at > 0);
    const uint32_t ids[2] = {16, 77};
    const char *names[2] = {"iq2_xxs", "unknown"};
    for (int i = 0; i < 2 && at; i++) {
        uint32_t id;
        memcpy(&id, file + at, 4);
        CHECK_EQ_INT(id, LK_DTYPE_Q4_K);
        memcpy(file + at, &ids[i], 4);
        test_write_all(path, file, n);
        memset(&err, 0, sizeof err);
        CHECK(lk_gguf_open(path, &g, &err) == LOKI_ERR_UNSUPPORTED);
        CHECKF(strstr(err.msg, "w.q4_k") && strstr(err.msg, names[i]), "%s", err.msg);
        printf("type %u: %s\n", ids[i], err.msg);
        memcpy(file + at, &(uint32_t){LK_DTYPE_Q4_K}, 4);
    }
    free(file);
    for (int ti = 0; ti < N_TYPES; ti++) free(bufs[ti]);
    unlink(path);
}

/* ------------------------------------------------------------ 4. gguf-py */

/* A python3 that runs tests/quant_ref.py --probe successfully, or NULL. */
static const char *find_python(void) {
    static const char *const cands[] = {"python3", "/usr/bin/python3"};
    for (size_t i = 0; i < LK_ARRAY_LEN(cands); i++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s '%s/tests/quant_ref.py' --probe 2>/dev/null", cands[i], LOKI_SOURCE_DIR);
        int st = -1;
        char *out = test_run_capture(cmd, &st);
        if (st == 0) {
            printf("gguf-py reference: %s: %s", cands[i], out ? out : "\n");
            free(out);
            return cands[i];
        }
        free(out);
    }
    return NULL;
}

/* Byte offsets of the fp16 scale fields of a block of t (-1 terminated). */
static void f16_fields(lk_dtype t, int off[3]) {
    off[0] = off[1] = off[2] = -1;
    switch (t) {
    case LK_DTYPE_Q4_0: off[0] = offsetof(lk_block_q4_0, d); break;
    case LK_DTYPE_Q5_0: off[0] = offsetof(lk_block_q5_0, d); break;
    case LK_DTYPE_Q4_1: off[0] = offsetof(lk_block_q4_1, d); off[1] = offsetof(lk_block_q4_1, m); break;
    case LK_DTYPE_Q5_1: off[0] = offsetof(lk_block_q5_1, d); off[1] = offsetof(lk_block_q5_1, m); break;
    case LK_DTYPE_Q2_K: off[0] = offsetof(lk_block_q2_k, d); off[1] = offsetof(lk_block_q2_k, dmin); break;
    case LK_DTYPE_Q3_K: off[0] = offsetof(lk_block_q3_k, d); break;
    case LK_DTYPE_Q4_K: off[0] = offsetof(lk_block_q4_k, d); off[1] = offsetof(lk_block_q4_k, dmin); break;
    case LK_DTYPE_Q5_K: off[0] = offsetof(lk_block_q5_k, d); off[1] = offsetof(lk_block_q5_k, dmin); break;
    case LK_DTYPE_Q6_K: off[0] = offsetof(lk_block_q6_k, d); break;
    default: break;
    }
}

#define PY_BLOCKS 96 /* random blocks per type and set */
enum { SET_INT, SET_F16, SET_OURS, N_SETS };
static const char *const k_set_names[N_SETS] = {"integer (fp16 scales = 1)", "random fp16 scales",
                                                "our quantization"};

/* Bytes of set `set` for type t into buf; returns the element count. */
static int64_t make_set(lk_dtype t, int set, uint8_t *buf, uint64_t *seed) {
    const int be = lk_dtype_block_elems(t);
    const size_t bb = lk_dtype_block_bytes(t);
    if (set == SET_OURS) {
        float *x = malloc(sizeof(float) * ROW * 6);
        for (int k = 0; k < 6; k++) make_row(k, x + k * ROW, seed);
        lk_row_from_f32(t, x, buf, ROW * 6);
        free(x);
        return ROW * 6;
    }
    int off[3];
    f16_fields(t, off);
    for (size_t i = 0; i < PY_BLOCKS * bb; i++) {
        *seed ^= *seed << 13; *seed ^= *seed >> 7; *seed ^= *seed << 17;
        buf[i] = (uint8_t)(*seed >> 24);
    }
    for (int b = 0; b < PY_BLOCKS; b++)
        for (int f = 0; f < 3 && off[f] >= 0; f++) {
            uint16_t h = 0x3C00; /* 1.0 */
            if (set == SET_F16) { /* sign, exponent 2^-10 .. 2^9, random mantissa */
                *seed ^= *seed << 13; *seed ^= *seed >> 7; *seed ^= *seed << 17;
                h = (uint16_t)(((*seed >> 20) & 0x8000) | (5 + (*seed >> 40) % 20) << 10 | ((*seed >> 8) & 0x3FF));
            }
            memcpy(buf + b * bb + off[f], &h, 2);
        }
    return (int64_t)PY_BLOCKS * be;
}

static void test_gguf_py(void) {
    const char *py = find_python();
    if (!py) {
        printf("SKIP gguf-py comparison: no python3 imports gguf and numpy (install python3-numpy "
               "python3-yaml and run scripts/get-gguf-py.sh)\n");
        return;
    }
    uint64_t seed = 0xC0FFEEull;
    char dir[] = "/tmp/loki_test_quant_py_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    size_t cap = lk_dtype_row_bytes(LK_DTYPE_Q5_1, ROW * 6) + PY_BLOCKS * 256;
    uint8_t *bufs[N_TYPES][N_SETS];
    int64_t ns[N_TYPES][N_SETS];
    char cmd[16384];
    int len = snprintf(cmd, sizeof cmd, "%s '%s/tests/quant_ref.py'", py, LOKI_SOURCE_DIR);
    for (int ti = 0; ti < N_TYPES; ti++)
        for (int s = 0; s < N_SETS; s++) {
            bufs[ti][s] = malloc(cap);
            ns[ti][s] = make_set(k_types[ti], s, bufs[ti][s], &seed);
            char in[512];
            snprintf(in, sizeof in, "%s/%d_%d.in", dir, ti, s);
            test_write_all(in, bufs[ti][s], lk_dtype_row_bytes(k_types[ti], ns[ti][s]));
            len += snprintf(cmd + len, sizeof cmd - (size_t)len, " %d %s %s/%d_%d.out", (int)k_types[ti], in, dir, ti, s);
        }
    int st = -1;
    char *out = test_run_capture(cmd, &st);
    free(out);
    CHECKF(st == 0, "quant_ref.py exited with %d", st);
    for (int ti = 0; ti < N_TYPES && st == 0; ti++) {
        const lk_dtype t = k_types[ti];
        const int be = lk_dtype_block_elems(t);
        for (int s = 0; s < N_SETS; s++) {
            char op[512];
            snprintf(op, sizeof op, "%s/%d_%d.out", dir, ti, s);
            size_t nb = 0;
            float *ref = (float *)test_read_all(op, &nb);
            const int64_t n = ns[ti][s];
            CHECKF(ref && nb == sizeof(float) * (size_t)n, "%s %s: gguf-py gave %zu bytes", lk_dtype_name(t),
                   k_set_names[s], nb);
            if (!ref || nb != sizeof(float) * (size_t)n) { free(ref); continue; }
            float *ours = malloc(sizeof(float) * (size_t)n);
            lk_row_to_f32(t, bufs[ti][s], ours, n);
            int bad = 0;
            double maxd = 0;
            for (int64_t b = 0; b < n / be; b++) {
                double amax = 0;
                for (int e = 0; e < be; e++) amax = fmax(amax, fabs(ref[b * be + e]));
                const double tol = s == SET_INT ? 0.0 : ldexp(amax, -21);
                for (int e = 0; e < be; e++) {
                    const double d = fabs((double)ours[b * be + e] - ref[b * be + e]);
                    maxd = fmax(maxd, d);
                    if (!(d <= tol) && bad++ < 3)
                        fprintf(stderr, "  %s %s block %lld element %d: ours %.9g gguf-py %.9g\n", lk_dtype_name(t),
                                k_set_names[s], (long long)b, e, ours[b * be + e], ref[b * be + e]);
                }
            }
            printf("%s vs gguf-py, %s: %lld values, max |diff| %.3g\n", lk_dtype_name(t), k_set_names[s],
                   (long long)n, maxd);
            CHECKF(bad == 0, "%s %s: %d values differ from gguf-py", lk_dtype_name(t), k_set_names[s], bad);
            free(ours);
            free(ref);
            unlink(op);
        }
    }
    for (int ti = 0; ti < N_TYPES; ti++)
        for (int s = 0; s < N_SETS; s++) {
            char in[512];
            snprintf(in, sizeof in, "%s/%d_%d.in", dir, ti, s);
            unlink(in);
            free(bufs[ti][s]);
        }
    rmdir(dir);
}

int main(void) {
    for (int ti = 0; ti < N_TYPES; ti++) {
        CHECK(lk_dtype_valid(k_types[ti]) && lk_dtype_is_quant(k_types[ti]));
        CHECK_EQ_INT(lk_dtype_row_bytes(k_types[ti], 256) * 1,
                     (size_t)(256 / lk_dtype_block_elems(k_types[ti])) * lk_dtype_block_bytes(k_types[ti]));
    }
    CHECK_EQ_INT(LK_DTYPE_Q4_0, 2); CHECK_EQ_INT(LK_DTYPE_Q4_1, 3); CHECK_EQ_INT(LK_DTYPE_Q5_0, 6);
    CHECK_EQ_INT(LK_DTYPE_Q5_1, 7); CHECK_EQ_INT(LK_DTYPE_Q2_K, 10); CHECK_EQ_INT(LK_DTYPE_Q3_K, 11);
    CHECK_EQ_INT(LK_DTYPE_Q4_K, 12); CHECK_EQ_INT(LK_DTYPE_Q5_K, 13); CHECK_EQ_INT(LK_DTYPE_Q6_K, 14);
    CHECK(!lk_dtype_valid(15) && !lk_dtype_valid(16) && !lk_dtype_valid(4) && !lk_dtype_valid(99));
    test_hand_built();
    test_round_trip();
    test_gguf_reader();
    test_gguf_py();
    return test_finish();
}
