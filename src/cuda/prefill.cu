/*
 * prefill.cu - prompt (prefill) attention over the paged bf16 KV cache
 * (lk_cuda_prefill.h): causal, optionally sliding-window, GQA, any split
 * layout; a tiled flash attention (FlashAttention-2's loop order: a block
 * owns a tile of query rows, loops over the key pages, keeps the running
 * max, sum and output in registers).
 *
 * Rows. A query row is a (token i, head g of the KV head's group) pair,
 * numbered idx = i * G + g: a block takes 64 consecutive rows of one KV
 * head (64 tokens of one head for MHA, 16 tokens x 4 heads for G = 4), so
 * the heads of a group share every K/V page the block reads and a few new
 * tokens (n * G small) still fill the tile. Grid: one block per (row tile,
 * KV head), the tiles with the most keys (the last tokens) launched first.
 *
 * Keys. The block's rows see positions [k_lo, p_hi] (k_lo = 0, or the
 * window's start for the first row); it walks those pages through the
 * block table, one page (P = 64 tokens) per step, K and V gathered with
 * cp.async into XOR-swizzled shared memory (16-byte chunk c of token t at
 * chunk c ^ (t % 8): conflict-free ldmatrix), two stages (the next page
 * loads while this one is used). Split layouts are reassembled per chunk
 * (chunk e < d from k_lo, the rest from k_hi; d is a multiple of 8).
 * Tokens outside [k_lo, p_hi] are zero-filled, not read: unwritten slots of
 * the last page may hold anything (NaN times a zero weight is NaN). The
 * block-table entry of a page is read one page ahead of its copies.
 * Registers (sm_90a, no spills): D = 64: 162 (3 blocks per SM), D = 128:
 * 227 (2 blocks; capped at 168 for 3 it spills ~100 bytes, LK_PF_D128_3BLK), D = 256: 255
 * (1 block: 160 KiB of shared memory).
 *
 * Products (warp = 16 rows, mma.sync m16n8k16 bf16 -> f32): S (16 x KN) =
 * Q K^T with Q (16 x D) in registers (D <= 128) or read from shared memory
 * per use (D = 256, to stay clear of spills); masking only on the steps
 * that straddle the diagonal or the window's edge (per warp: steps that
 * none of its rows can see are skipped); online softmax on the S fragments
 * in base 2 (scale * log2 e folded into one FMA, ex2.approx); P rounded to
 * bf16 and taken straight from the S fragments as the A operand of
 * O (16 x D) += P V, V by transposed ldmatrix. KN = 64 keys per step (one
 * page) for D <= 128, 32 for D = 256 (registers: O alone is 128 a lane).
 */
#include "cuda/attend_tile.cuh"
#include "cuda/lk_cuda_prefill.h"

#include <math.h>

#define PF_ROWS 64 /* query rows per block */
#define PF_WARPS 4
#define PF_THREADS (PF_WARPS * 32)
#define PF_P LK_GPU_PAGE

/* Per head dim: Q kept in registers (QREG), keys per softmax step (KN),
 * shared memory: two stages of K (P, D) | V (P, D) bf16, then (not QREG)
 * Q (64, D) bf16; with QREG, Q passes through stage 1 before its first use. */
template <int D> struct pf_cfg {
    static constexpr bool QREG = D <= 128;
    static constexpr int KN = D <= 128 ? 64 : 32;
    static constexpr int TILE = PF_P * D;  /* elements of a page's K (or V) */
    static constexpr int STAGE = 2 * TILE; /* K then V */
    static constexpr size_t SMEM = (size_t)(2 * STAGE + (QREG ? 0 : PF_ROWS * D)) * 2;
    static constexpr int CPR = D / 8;              /* 16-byte chunks per token row */
    static constexpr int TSTEP = PF_THREADS / CPR; /* tokens apart of one thread's chunks */
    static constexpr int NT = PF_P / TSTEP;        /* chunks per thread per page (of K, and of V) */
#ifdef LK_PF_D128_3BLK /* dev/cuda variant: D = 128 capped at 168 registers for 3 blocks per SM (spills) */
    static constexpr int MINB = D <= 128 ? 3 : 1;
#else
    static constexpr int MINB = D <= 64 ? 3 : D <= 128 ? 2 : 1; /* blocks per SM for __launch_bounds__ */
#endif
};

/* What a launch needs; positions are absolute (0 = the sequence's first token). */
struct pf_args {
    const uint16_t *pool;  /* bf16 (L, n_pages, Hkv, P*2*D) */
    const int32_t *bt;     /* (max_pages_per_seq) the sequence's block table row */
    const int32_t *dsplit; /* (L, Hkv) split dims */
    const float *q;        /* (n, H, D) */
    float *out;            /* (n, H, D) */
    const int32_t *pos_dev;/* not NULL: the first position, read when the kernel runs (pos0 unused) */
    int32_t n_pages, Hkv, layer, H, G, pos0, window, nrows /* n * G */, ntiles /* ceil(nrows / 64) */;
    float sc;              /* scale * log2(e) */
};

/* 2^x (approximate, flushes denormals; 2^-inf = 0). */
__device__ __forceinline__ float pf_ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* c (16 x 8 f32: c0 c1 row g, c2 c3 row g + 8) += a (16 x 16 bf16) . b (16 x 8 bf16) */
__device__ __forceinline__ void pf_mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Gather logical page lp of the sequence, physical page `page` (KV head
 * kvh's segment: seg0 is page 0's, pages pstride apart) into dst: K (P, D)
 * then V (P, D), swizzled; tokens outside [k_lo, p_hi] zero-filled. Every
 * thread issues its NT chunks of K and NT of V (no commit). */
template <int D>
__device__ __forceinline__ void pf_load(const uint16_t *seg0, size_t pstride, int d, int lp, int page, int k_lo,
                                        int p_hi, uint16_t *dst) {
    using C = pf_cfg<D>;
    const int ch = threadIdx.x % C::CPR, tok0 = threadIdx.x / C::CPR, e = ch * 8;
    const int kstride = e < d ? d : D - d, koff = e < d ? e : PF_P * d + e - d;
    const uint16_t *seg = seg0 + (size_t)page * pstride;
#pragma unroll
    for (int i = 0; i < C::NT; i++) {
        const int tok = tok0 + i * C::TSTEP, pos = lp * PF_P + tok;
        const bool ok = pos >= k_lo && pos <= p_hi;
        cp_async16(dst + swz<D>(tok, ch), ok ? seg + koff + tok * kstride : seg0, ok ? 16 : 0);
        cp_async16(dst + C::TILE + swz<D>(tok, ch), ok ? seg + PF_P * D + tok * D + e : seg0, ok ? 16 : 0);
    }
}

/* One block = 64 query rows (idx = i * G + g) of one KV head; 4 warps of
 * 16 rows. Lane 4 gq + c holds rows gq and gq + 8 of its warp: S and O
 * fragments in the m16n8 accumulator layout (columns 8 j + 2 c, + 1). */
template <int D>
__global__ void __launch_bounds__(PF_THREADS, pf_cfg<D>::MINB) prefill_kernel(const pf_args a) {
    using C = pf_cfg<D>;
    constexpr int KN = C::KN;
    extern __shared__ __align__(16) uint16_t sm[];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gq = lane / 4, c = lane % 4, mi = lane >> 3;
    const int kvh = blockIdx.x % a.Hkv, tile = a.ntiles - 1 - blockIdx.x / a.Hkv;
    const int idx0 = tile * PF_ROWS, last = min(idx0 + PF_ROWS, a.nrows) - 1;
    const int pos0 = a.pos_dev ? *a.pos_dev : a.pos0; /* a captured decode step: the position of this run */
    const int p_lo = pos0 + idx0 / a.G, p_hi = pos0 + last / a.G;
    const int k_lo = a.window > 0 ? max(0, p_lo - a.window + 1) : 0;
    const int d = a.dsplit[a.layer * a.Hkv + kvh];
    /* this warp's rows (clamped to the block's last) and this lane's two */
    const bool wactive = idx0 + warp * 16 <= last;
    const int wp_min = pos0 + min(idx0 + warp * 16, last) / a.G;
    const int wp_max = pos0 + min(idx0 + warp * 16 + 15, last) / a.G;
    const int r0 = idx0 + warp * 16 + gq, r1 = r0 + 8;
    const int pr0 = pos0 + min(r0, last) / a.G, pr1 = pos0 + min(r1, last) / a.G;

    /* stage s at sm + s * STAGE */
    uint16_t *const Qs = sm + (C::QREG ? 1 : 2) * C::STAGE; /* (64, D) bf16, swizzled */
    const uint16_t *seg0 = a.pool + lk_seg_offset(a.layer, 0, kvh, a.n_pages, a.Hkv, D);
    const size_t pstride = (size_t)a.Hkv * lk_seg_elems(D);
    const int pg_first = k_lo / PF_P, pg_last = p_hi / PF_P;

    pf_load<D>(seg0, pstride, d, pg_first, a.bt[pg_first], k_lo, p_hi, sm);
    cp_async_commit();
    /* the physical page of the next page to load, read a page ahead so the
     * block-table load's latency is not in front of every page's copies */
    int pnext = pg_first < pg_last ? a.bt[pg_first + 1] : 0;

    /* Q of the block's rows to bf16 (rows past the last: zero) */
    for (int e = threadIdx.x; e < PF_ROWS * D / 4; e += PF_THREADS) {
        const int r = e / (D / 4), col = (e % (D / 4)) * 4, idx = idx0 + r;
        float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (idx <= last) {
            const int i = idx / a.G, g = idx % a.G;
            x = *(const float4 *)(a.q + ((size_t)i * a.H + (size_t)kvh * a.G + g) * D + col);
        }
        uint2 w;
        w.x = bf2(x.x, x.y), w.y = bf2(x.z, x.w);
        *(uint2 *)(Qs + swz<D>(r, col / 8) + col % 8) = w;
    }
    __syncthreads();
    /* A operand of Q: matrices (rows 0-7 | 8-15) x (components 0-7 | 8-15) of k-step k */
    const int qrow = warp * 16 + (mi & 1) * 8 + (lane & 7);
    uint32_t qa[C::QREG ? D / 16 : 1][4];
    if constexpr (C::QREG) {
#pragma unroll
        for (int k = 0; k < D / 16; k++) ldsm_x4(qa[k], Qs + swz<D>(qrow, 2 * k + (mi >> 1)));
        __syncthreads(); /* stage 1 is loaded next */
    }

    float o[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f; /* rows gq, gq + 8: running max (raw q.k), sum */
    const int ktok = (mi >> 1) * 8 + (lane & 7), vtok = (mi & 1) * 8 + (lane & 7);

    for (int lp = pg_first; lp <= pg_last; lp++) {
        const int stg = (lp - pg_first) & 1;
        const uint16_t *cur = sm + stg * C::STAGE;
        if (lp < pg_last) pf_load<D>(seg0, pstride, d, lp + 1, pnext, k_lo, p_hi, sm + (stg ^ 1) * C::STAGE);
        cp_async_commit();
        pnext = lp + 2 <= pg_last ? a.bt[lp + 2] : 0; /* used next iteration */
        cp_async_wait<1>();
        __syncthreads();
#pragma unroll
        for (int sub = 0; sub < PF_P / KN; sub++) {
            const int kb = lp * PF_P + sub * KN; /* position of the step's first key */
            if (!wactive || kb > wp_max || (a.window > 0 && kb + KN - 1 <= wp_min - a.window)) continue;
            const bool mask = kb + KN - 1 > wp_min || (a.window > 0 && kb <= wp_max - a.window);
            const uint16_t *Ks = cur + sub * KN * D, *Vs = cur + C::TILE + sub * KN * D;
            /* S (16 x KN) = Q K^T: n-tiles of 8 keys; B = K rows, matrices
             * (keys 0-7 | 8-15) x (components 0-7 | 8-15) */
            float s[KN / 8][4];
#pragma unroll
            for (int nt = 0; nt < KN / 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
            for (int k = 0; k < D / 16; k++) {
                uint32_t aq[4];
                if constexpr (C::QREG) aq[0] = qa[k][0], aq[1] = qa[k][1], aq[2] = qa[k][2], aq[3] = qa[k][3];
                else ldsm_x4(aq, Qs + swz<D>(qrow, 2 * k + (mi >> 1)));
#pragma unroll
                for (int np = 0; np < KN / 16; np++) {
                    uint32_t kb4[4];
                    ldsm_x4(kb4, Ks + swz<D>(np * 16 + ktok, 2 * k + (mi & 1)));
                    pf_mma(s[2 * np], aq, kb4[0], kb4[1]);
                    pf_mma(s[2 * np + 1], aq, kb4[2], kb4[3]);
                }
            }
            if (mask) {
#pragma unroll
                for (int nt = 0; nt < KN / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int key = kb + 8 * nt + 2 * c + (e & 1), pr = e < 2 ? pr0 : pr1;
                        if (key > pr || (a.window > 0 && key <= pr - a.window)) s[nt][e] = -INFINITY;
                    }
            }
            /* online softmax: the rows' maxima over the quad's lanes */
            float mx0 = m0, mx1 = m1;
#pragma unroll
            for (int nt = 0; nt < KN / 8; nt++)
                mx0 = fmaxf(mx0, fmaxf(s[nt][0], s[nt][1])), mx1 = fmaxf(mx1, fmaxf(s[nt][2], s[nt][3]));
#pragma unroll
            for (int off = 1; off < 4; off <<= 1) {
                mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, off));
                mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, off));
            }
            /* a row that has seen no key yet keeps max -inf: exponents from 0 then (all weights 0) */
            const float b0 = mx0 == -INFINITY ? 0.0f : mx0 * a.sc, b1 = mx1 == -INFINITY ? 0.0f : mx1 * a.sc;
            const float cr0 = pf_ex2(fmaf(m0, a.sc, -b0)), cr1 = pf_ex2(fmaf(m1, a.sc, -b1)); /* 0 from -inf */
            m0 = mx0, m1 = mx1;
            float ls0 = 0.0f, ls1 = 0.0f;
#pragma unroll
            for (int nt = 0; nt < KN / 8; nt++) {
                s[nt][0] = pf_ex2(fmaf(s[nt][0], a.sc, -b0)), s[nt][1] = pf_ex2(fmaf(s[nt][1], a.sc, -b0));
                s[nt][2] = pf_ex2(fmaf(s[nt][2], a.sc, -b1)), s[nt][3] = pf_ex2(fmaf(s[nt][3], a.sc, -b1));
                ls0 += s[nt][0] + s[nt][1], ls1 += s[nt][2] + s[nt][3];
            }
            l0 = l0 * cr0 + ls0, l1 = l1 * cr1 + ls1;
#pragma unroll
            for (int j = 0; j < D / 8; j++) o[j][0] *= cr0, o[j][1] *= cr0, o[j][2] *= cr1, o[j][3] *= cr1;
            /* O (16 x D) += P V: P (16 x 16 keys) from the S fragments of
             * n-tiles 2kk, 2kk + 1; B = V by transposed loads, matrices
             * (keys 0-7 | 8-15) x (dims 0-7 | 8-15) */
#pragma unroll
            for (int kk = 0; kk < KN / 16; kk++) {
                const uint32_t pa[4] = {bf2(s[2 * kk][0], s[2 * kk][1]), bf2(s[2 * kk][2], s[2 * kk][3]),
                                        bf2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                        bf2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
                for (int jj = 0; jj < D / 16; jj++) {
                    uint32_t vb[4];
                    ldsm_x4_t(vb, Vs + swz<D>(kk * 16 + vtok, 2 * jj + (mi >> 1)));
                    pf_mma(o[2 * jj], pa, vb[0], vb[1]);
                    pf_mma(o[2 * jj + 1], pa, vb[2], vb[3]);
                }
            }
        }
        __syncthreads(); /* this stage is refilled by the next iteration's load */
    }
    cp_async_wait<0>();

    /* the quad's partial sums; every real row saw its own key, so l > 0 */
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
        l0 += __shfl_xor_sync(0xffffffffu, l0, off);
        l1 += __shfl_xor_sync(0xffffffffu, l1, off);
    }
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const int r = half ? r1 : r0;
        if (r > last) continue;
        const float inv = 1.0f / (half ? l1 : l0);
        float *op = a.out + ((size_t)(r / a.G) * a.H + (size_t)kvh * a.G + r % a.G) * D + 2 * c;
#pragma unroll
        for (int j = 0; j < D / 8; j++)
            *(float2 *)(op + 8 * j) = make_float2(o[j][2 * half] * inv, o[j][2 * half + 1] * inv);
    }
}

/* Launch prefill_kernel<D>: `blocks` blocks of 128 threads on stream s. */
template <int D> static cudaError_t pf_launch(const pf_args &a, int blocks, cudaStream_t s) {
    using C = pf_cfg<D>;
    cudaError_t e = cudaFuncSetAttribute(prefill_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)C::SMEM);
    if (e != cudaSuccess) return e;
    prefill_kernel<D><<<blocks, PF_THREADS, C::SMEM, s>>>(a);
    return cudaGetLastError();
}

/* lk_gpu_attn_prefill, and with pos_dev not NULL lk_gpu_attn_decode_window
 * (pos0: the position now, for the checks only). */
static loki_status prefill(lk_gpu_kv *kv, int layer, int32_t seq, int32_t pos0, const int32_t *pos_dev, int32_t n,
                           int32_t n_head, const float *q, float *out, float scale, int32_t window, loki_error *err) {
    loki_status st = LOKI_OK;
    cudaError_t ce = cudaSuccess;
    if (!kv) return lk_fail(err, LOKI_ERR_ARG, "GPU prompt attention: no KV cache");
    const int Hkv = kv->n_head_kv, D = kv->head_dim;
    if (layer < 0 || layer >= kv->n_layer)
        return lk_fail(err, LOKI_ERR_ARG, "GPU prompt attention: layer %d out of range (0..%d)", layer,
                       kv->n_layer - 1);
    if (seq < 0 || seq >= kv->max_seqs)
        return lk_fail(err, LOKI_ERR_ARG, "GPU prompt attention: sequence %d out of range (0..%d)", seq,
                       kv->max_seqs - 1);
    if (n < 0 || pos0 < 0)
        return lk_fail(err, LOKI_ERR_ARG, "GPU prompt attention: negative token count %d or first position %d", n,
                       pos0);
    if (n_head < 1 || n_head % Hkv)
        return lk_fail(err, LOKI_ERR_ARG,
                       "GPU prompt attention: %d query heads is not a positive multiple of the cache's %d KV heads",
                       n_head, Hkv);
    if (D != 64 && D != 128 && D != 256)
        return lk_fail(err, LOKI_ERR_ARG, "GPU prompt attention: head_dim %d is not supported (64, 128 or 256)", D);
    if (!(scale > 0.0f) || isinf(scale))
        return lk_fail(err, LOKI_ERR_ARG, "GPU prompt attention: scale %g is not a positive finite number",
                       (double)scale);
    if (window < 0)
        return lk_fail(err, LOKI_ERR_ARG, "GPU prompt attention: negative window %d (0: no window)", window);
    if (n == 0) return LOKI_OK;
    if (!q || !out || ((uintptr_t)q | (uintptr_t)out) % 16)
        return lk_fail(err, LOKI_ERR_ARG, "GPU prompt attention: q (%p) and out (%p) must be 16-byte aligned device "
                       "buffers", (const void *)q, (void *)out);
    {
        const int32_t *row = kv->bt_host + (size_t)seq * kv->max_pages_per_seq;
        int64_t have = 0;
        while (have < kv->max_pages_per_seq && row[have] >= 0) have++;
        const int64_t end = (int64_t)pos0 + n;
        if (end > have * PF_P)
            return lk_fail(err, LOKI_ERR_ARG,
                           "GPU prompt attention: positions %d..%lld of sequence %d exceed its %lld reserved tokens "
                           "(%lld pages)", pos0, (long long)(end - 1), seq, (long long)(have * PF_P), (long long)have);
        const int G = n_head / Hkv;
        const int64_t nrows = (int64_t)n * G, ntiles = (nrows + PF_ROWS - 1) / PF_ROWS;
        if (nrows > INT32_MAX - PF_ROWS || ntiles * Hkv > INT32_MAX)
            return lk_fail(err, LOKI_ERR_ARG, "GPU prompt attention: %d tokens x %d heads is too many rows", n, n_head);
        pf_args a;
        a.pool = kv->pool, a.bt = kv->block_table + (size_t)seq * kv->max_pages_per_seq, a.dsplit = kv->d_dev;
        a.q = q, a.out = out;
        a.n_pages = kv->n_pages, a.Hkv = Hkv, a.layer = layer, a.H = n_head, a.G = G, a.pos0 = pos0;
        a.pos_dev = pos_dev;
        a.window = window, a.nrows = (int32_t)nrows, a.ntiles = (int32_t)ntiles;
        a.sc = scale * 1.4426950408889634f;
        const int blocks = (int)(ntiles * Hkv);
        cudaStream_t s = kv->cu->stream;
        ce = D == 64    ? pf_launch<64>(a, blocks, s)
             : D == 128 ? pf_launch<128>(a, blocks, s)
                        : pf_launch<256>(a, blocks, s);
    }
    LK_CUDA_TRY(ce);
fail:
    return st;
}

extern "C" loki_status lk_gpu_attn_prefill(lk_gpu_kv *kv, int layer, int32_t seq, int32_t pos0, int32_t n,
                                           int32_t n_head, const float *q, float *out, float scale, int32_t window,
                                           loki_error *err) {
    return prefill(kv, layer, seq, pos0, NULL, n, n_head, q, out, scale, window, err);
}

extern "C" loki_status lk_gpu_attn_decode_window(lk_gpu_kv *kv, int layer, int32_t seq, int32_t pos,
                                                 const int32_t *pos_dev, int32_t n_head, const float *q, float *out,
                                                 float scale, int32_t window, loki_error *err) {
    if (!pos_dev) return lk_fail(err, LOKI_ERR_ARG, "GPU windowed decode attention: no device position");
    return prefill(kv, layer, seq, pos, pos_dev, 1, n_head, q, out, scale, window, err);
}
