/*
 * attend_tile.cuh - the building blocks of the exact decode attention
 * (attend.cu, whose header comment describes the method): the tile
 * configuration, the cp.async / ldmatrix / mma.sync wrappers, the products
 * of one 64-token tile for one warp (the transposed form for 1-4 heads and
 * the plain one for 6-8), the Q fragments, the merge of the warps' running
 * (max, sum, output), the merge of a row's split partials, and the choice
 * of kernel configuration. Kept apart from the kernels so a kernel variant
 * (dev/cuda, or the stream attend tried in 8c4657c) reuses the same math.
 */
#ifndef LK_CUDA_ATTEND_TILE_CUH
#define LK_CUDA_ATTEND_TILE_CUH

#include "cuda/kernels.cuh"

#include <cub/block/block_reduce.cuh>
#include <math.h>

#define ATT_TILE LK_GPU_PAGE
#define ATT_WARPS 4
#define ATT_THREADS (ATT_WARPS * 32)
#define ATT_WT (ATT_TILE / ATT_WARPS) /* tokens per warp per tile: two 8-token n-tiles */

/* STAGES: cp.async pipeline depth. Measured on the H200 (docs/RESULTS.md):
 * dense MHA streams best 3 deep (2 blocks per SM); gathers and GQA groups
 * did better 2 deep (3 blocks per SM). */
template <int D, int STAGES_, bool LSC = false> struct att_cfg {
    static constexpr int STAGES = STAGES_;
    static constexpr int CPT = 2 * D / 8;              /* 16-byte chunks per token: K then V */
    /* a stage: K (64, D), V (64, D) bf16, then (LSC) the tile's 64 (slot, score) entries */
    static constexpr int STAGE_ELEMS = ATT_TILE * 2 * D + (LSC ? 4 * ATT_TILE : 0);
    static constexpr size_t SMEM = (size_t)STAGES * STAGE_ELEMS * 2;
    static constexpr int TSTEP = ATT_THREADS / CPT;    /* tokens apart of one thread's chunks */
    static constexpr int NT = ATT_TILE / TSTEP;        /* chunks per thread per tile */
    static constexpr int GS = CPT < 32 ? CPT : 32;     /* lanes that share a first token */
};

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, int src_bytes) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const void *p) {
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], const void *p) {
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
/* c (16x8 f32) += a (16x16 bf16, rows 8..15 zero: a1 = a3 = 0) . b (16x8 bf16) */
__device__ __forceinline__ void mma16816(float c[2], uint32_t a0, uint32_t a2, uint32_t b0, uint32_t b1) {
    float z0 = 0.0f, z1 = 0.0f; /* rows 8..15: zero in, discarded */
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(z0), "+f"(z1)
                 : "r"(a0), "r"(0u), "r"(a2), "r"(0u), "r"(b0), "r"(b1));
}
/* c (16x8 f32: c0 c1 rows g, c2 c3 rows g + 8) += a (16x16 bf16, all four
 * registers) . b (16x8 bf16) */
__device__ __forceinline__ void mma16816f(float c[2], float c8[2], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c8[0]), "+f"(c8[1])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
/* Two floats as bf16x2 (x in the low half), and the remainders below them. */
__device__ __forceinline__ uint32_t bf2(float x, float y) {
    __nv_bfloat162 v = __floats2bfloat162_rn(x, y);
    return *(uint32_t *)&v;
}
__device__ __forceinline__ void split2(float x, float y, uint32_t &hi, uint32_t &lo) {
    const __nv_bfloat16 hx = __float2bfloat16_rn(x), hy = __float2bfloat16_rn(y);
    hi = bf2(__bfloat162float(hx), __bfloat162float(hy));
    lo = bf2(x - __bfloat162float(hx), y - __bfloat162float(hy));
}
/* Element offset of chunk ch of token row tok in a swizzled tile. */
template <int D> __device__ __forceinline__ int swz(int tok, int ch) { return tok * D + ((ch ^ (tok & 7)) << 3); }

/* One warp's 16 tokens (tw0 ..) of a tile for NH <= 4 query heads,
 * transposed products (see the top): lane = 4 g + c holds head c % NH's
 * scores of tokens tw0 + g and tw0 + g + 8 in c0 + c1 and c2 + c3 of the S^T
 * accumulators, and its O^T rows (dims) 16 jj + g and + 8 in o[2 jj] and
 * o[2 jj + 1], columns 2c (hi) and 2c + 1 (lo). Updates the lane's head's
 * running max m and the lane's share of its sum l (its two tokens); lsc:
 * the tile's (slot, first-d score) entries (NH = 1); raw: the tile's exact
 * scores of the block's first head (H2O), heads n_ctx apart. */
template <int D, int NH>
__device__ __forceinline__ void tile_t(const uint16_t *Ks, const uint16_t *Vs, int lane, int tw0, int valid,
                                       int k_first, int k_end, const uint32_t (&qb)[D / 16][2], float &m, float &l,
                                       float (&o)[D / 8][2], const int2 *lsc, float *raw, int n_ctx) {
    const int g = lane / 4, c = lane % 4, mi = lane >> 3;
    /* two accumulator chains (even and odd k-steps) halve the dependent run */
    float sa[2] = {0.0f, 0.0f}, sa8[2] = {0.0f, 0.0f}, sb[2] = {0.0f, 0.0f}, sb8[2] = {0.0f, 0.0f};
    if (lsc) sa[0] = __int_as_float(lsc[tw0 + g].y), sa8[0] = __int_as_float(lsc[tw0 + g + 8].y);
    {
        /* A = K (tokens x components): matrices (tokens 0-7 | 8-15) x (components 0-7 | 8-15) */
        const int ktok = tw0 + (mi & 1) * 8 + (lane & 7);
#pragma unroll
        for (int k = 0; k < D / 16; k++) {
            if (k < k_first || k >= k_end) continue;
            uint32_t ka[4];
            ldsm_x4(ka, Ks + swz<D>(ktok, 2 * k + (mi >> 1)));
            if (k & 1) mma16816f(sb, sb8, ka, qb[k][0], qb[k][1]);
            else mma16816f(sa, sa8, ka, qb[k][0], qb[k][1]);
        }
    }
    float s0 = sa[0] + sa[1] + sb[0] + sb[1], s1 = sa8[0] + sa8[1] + sb8[0] + sb8[1];
    float *rh = raw && c < NH ? raw + (size_t)c * n_ctx : NULL;
    if (tw0 + g >= valid) s0 = -INFINITY;
    else if (rh) rh[tw0 + g] = s0;
    if (tw0 + g + 8 >= valid) s1 = -INFINITY;
    else if (rh) rh[tw0 + g + 8] = s1;
    float mx = fmaxf(s0, s1);
#pragma unroll
    for (int off = 4; off < 32; off <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    const float mn = fmaxf(m, mx);
    float p0 = 0.0f, p1 = 0.0f;
    if (mn != -INFINITY) {
        p0 = __expf(s0 - mn), p1 = __expf(s1 - mn);
        if (mn > m) { /* rescale only when the max moved (most tiles of a long list keep it) */
            const float corr = __expf(m - mn); /* 0 when m was -inf */
            l *= corr, m = mn;
#pragma unroll
            for (int j = 0; j < D / 8; j++) o[j][0] *= corr, o[j][1] *= corr;
        }
        l += p0 + p1;
    }
    /* B = P^T (tokens x 8): column g is head hh = (g / 2) % NH, hi for g
     * even, lo for odd; lane 4g + c needs that head's tokens 2c, 2c + 1,
     * 2c + 8, 2c + 9, held by lanes 8c + hh and 8c + 4 + hh */
    const int hh = (g >> 1) % NH;
    const float x0 = __shfl_sync(0xffffffffu, p0, 8 * c + hh), x1 = __shfl_sync(0xffffffffu, p0, 8 * c + 4 + hh);
    const float x2 = __shfl_sync(0xffffffffu, p1, 8 * c + hh), x3 = __shfl_sync(0xffffffffu, p1, 8 * c + 4 + hh);
    uint32_t h0, l0, h1, l1;
    split2(x0, x1, h0, l0);
    split2(x2, x3, h1, l1);
    const uint32_t pb0 = g & 1 ? l0 : h0, pb1 = g & 1 ? l1 : h1;
    {
        /* A = V^T (components x tokens) by transposed loads: matrices
         * (components 0-7 | 8-15) x (tokens 0-7 | 8-15) */
        const int vtok = tw0 + (mi >> 1) * 8 + (lane & 7);
#pragma unroll
        for (int jj = 0; jj < D / 16; jj++) {
            uint32_t va[4];
            ldsm_x4_t(va, Vs + swz<D>(vtok, 2 * jj + (mi & 1)));
            mma16816f(o[2 * jj], o[2 * jj + 1], va, pb0, pb1);
        }
    }
}


/* One warp's 16 tokens (tw0 ..) of a tile for NH = 6 or 8 query heads,
 * plain products: S (heads x 16 tokens) = Q K^T with the heads as the 16
 * rows, lane 4 hq + q4 holding S[hq][tw0 + 8 nt + 2 q4 + e]; P taken from
 * the S fragments for O (heads x D) += P V. Arguments as tile_t's (qh, ql:
 * the hi and lo parts of Q as the A operand). */
template <int D, int NH>
__device__ __forceinline__ void tile_n(const uint16_t *Ks, const uint16_t *Vs, int lane, int tw0, int valid,
                                       const uint32_t (&qh)[D / 16][2], const uint32_t (&ql)[D / 16][2], float &m,
                                       float &l, float (&o)[D / 8][2], const int2 *lsc, float *raw, int n_ctx) {
    const int hq = lane / 4, q4 = lane % 4;
    float ls[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}}; /* this lane's tokens' first-d scores */
    if (lsc) {
#pragma unroll
        for (int nt = 0; nt < 2; nt++)
#pragma unroll
            for (int e = 0; e < 2; e++) ls[nt][e] = __int_as_float(lsc[tw0 + 8 * nt + 2 * q4 + e].y);
    }
    /* S (heads x 16 tokens) = Q K^T (+ the first-d scores): n-tile 0 =
     * tokens tw0..+7, 1 = +8..+15 */
    float s[2][2] = {{ls[0][0], ls[0][1]}, {ls[1][0], ls[1][1]}};
    {
        const int mi = lane >> 3, ktok = tw0 + (mi >> 1) * 8 + (lane & 7);
#pragma unroll
        for (int k = 0; k < D / 16; k++) {
            uint32_t kb[4];
            ldsm_x4(kb, Ks + swz<D>(ktok, 2 * k + (mi & 1)));
            mma16816(s[0], qh[k][0], qh[k][1], kb[0], kb[1]);
            mma16816(s[0], ql[k][0], ql[k][1], kb[0], kb[1]);
            mma16816(s[1], qh[k][0], qh[k][1], kb[2], kb[3]);
            mma16816(s[1], ql[k][0], ql[k][1], kb[2], kb[3]);
        }
    }
    float mx = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < 2; nt++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int tok = tw0 + 8 * nt + 2 * q4 + e;
            if (tok >= valid) s[nt][e] = -INFINITY;
            else if (raw && hq < NH) raw[(size_t)hq * n_ctx + tok] = s[nt][e];
            mx = fmaxf(mx, s[nt][e]);
        }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float mn = fmaxf(m, mx);
    uint32_t ph[2], pl[2]; /* P as the A operand: rows = heads, k = the 16 tokens */
    if (mn == -INFINITY) {
        ph[0] = ph[1] = pl[0] = pl[1] = 0u;
    } else {
        const float corr = __expf(m - mn); /* 0 when m was -inf */
        float p[2][2];
#pragma unroll
        for (int nt = 0; nt < 2; nt++)
#pragma unroll
            for (int e = 0; e < 2; e++) p[nt][e] = __expf(s[nt][e] - mn);
        l = l * corr + p[0][0] + p[0][1] + p[1][0] + p[1][1];
        m = mn;
#pragma unroll
        for (int j = 0; j < D / 8; j++) o[j][0] *= corr, o[j][1] *= corr;
        split2(p[0][0], p[0][1], ph[0], pl[0]);
        split2(p[1][0], p[1][1], ph[1], pl[1]);
    }
    /* O (heads x D) += P V: V fragments by transposed loads, two 8-column
     * tiles per load */
    {
        const int mi = lane >> 3, vtok = tw0 + (mi & 1) * 8 + (lane & 7);
#pragma unroll
        for (int jj = 0; jj < D / 16; jj++) {
            uint32_t vb[4];
            ldsm_x4_t(vb, Vs + swz<D>(vtok, 2 * jj + (mi >> 1)));
            mma16816(o[2 * jj], ph[0], ph[1], vb[0], vb[1]);
            mma16816(o[2 * jj], pl[0], pl[1], vb[0], vb[1]);
            mma16816(o[2 * jj + 1], ph[0], ph[1], vb[2], vb[3]);
            mma16816(o[2 * jj + 1], pl[0], pl[1], vb[2], vb[3]);
        }
    }
}

/* The Q fragments of a block's NH heads (qp: the first head's row, D
 * floats; heads D apart), pre-scaled, split into bf16 hi and lo parts.
 * Plain (NH > 4): the A operand, lane 4 hq + q4 holding head hq's
 * components 16k + 2 q4 + {0, 1, 8, 9} in qh/ql (zero for hq >= NH).
 * Transposed (NH <= 4): the B operand of S^T, column lane/4 = 2 head + (0:
 * hi, 1: lo), the same components, in qb. lowrank: only the first d
 * components; lsc: only those from d on (the first d are scored already). */
template <int D, int NH, int KQ, int KB>
__device__ __forceinline__ void attend_q(const float *qp, float scale, int d, bool lowrank, bool lsc, int lane,
                                         uint32_t (&qh)[KQ][2], uint32_t (&ql)[KQ][2], uint32_t (&qb)[KB][2]) {
    constexpr bool TR = NH <= 4;
    const int hq = lane / 4, q4 = lane % 4;
    const int qhead = TR ? (hq >> 1) % NH : hq < NH ? hq : 0;
    qp += (size_t)qhead * D;
#pragma unroll
    for (int k = 0; k < D / 16; k++)
#pragma unroll
        for (int u = 0; u < 2; u++) {
            const int j = 16 * k + 8 * u + 2 * q4;
            float x = 0.0f, y = 0.0f;
            if (TR || hq < NH) {
                if (lowrank ? j < d : !lsc || j >= d) x = qp[j] * scale;
                if (lowrank ? j + 1 < d : !lsc || j + 1 >= d) y = qp[j + 1] * scale;
            }
            uint32_t hi, lo;
            split2(x, y, hi, lo);
            if constexpr (TR) qb[k % KB][u] = hq & 1 ? lo : hi;
            else qh[k % KQ][u] = hi, ql[k % KQ][u] = lo;
        }
}

/* Shared memory the warps' merge needs: (WARPS, NH, D) outputs, then
 * (WARPS, NH) maxima and sums. */
template <int D, int NH> constexpr size_t attend_red_bytes() {
    return (size_t)(ATT_WARPS * NH * D + 2 * ATT_WARPS * NH) * 4;
}

/* Merge the block's warps: each warp's running max m, sum l and output o
 * (its share of the block's tokens) go to red (attend_red_bytes, free for
 * use: the caller synchronises before), then for every (head h, component
 * j) of the block emit(h, j, M, L, O) with the block's max M, its sum L
 * and the unnormalised O. Ends with every thread past its emits; red may
 * be reused only after the next __syncthreads. */
template <int D, int NH, typename Emit>
__device__ __forceinline__ void attend_merge(float *red, int warp, int lane, float m, float l,
                                             const float (&o)[D / 8][2], Emit emit) {
    constexpr bool TR = NH <= 4;
    const int hq = lane / 4, q4 = lane % 4;
    float *redm = red + ATT_WARPS * NH * D; /* (WARPS, NH) */
    float *redl = redm + ATT_WARPS * NH;    /* (WARPS, NH) */
    /* the 4 lanes of a head share its max; sum their partial sums
     * (transposed: lane 4g + c has head c % NH's max and its tokens' sum,
     * so the sum runs over g) */
    if constexpr (TR) {
#pragma unroll
        for (int off = 4; off < 32; off <<= 1) l += __shfl_xor_sync(0xffffffffu, l, off);
        if (q4 < NH) {
            float *r = red + (warp * NH + q4) * D;
#pragma unroll
            for (int jj = 0; jj < D / 16; jj++) /* O^T rows 16 jj + hq and + 8: columns 2 q4 (hi) + 2 q4 + 1 (lo) */
                r[16 * jj + hq] = o[2 * jj][0] + o[2 * jj][1], r[16 * jj + hq + 8] = o[2 * jj + 1][0] + o[2 * jj + 1][1];
            if (hq == 0) redm[warp * NH + q4] = m, redl[warp * NH + q4] = l;
        }
    } else {
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        if (hq < NH) {
#pragma unroll
            for (int j = 0; j < D / 8; j++)
                red[(warp * NH + hq) * D + 8 * j + 2 * q4] = o[j][0],
                                              red[(warp * NH + hq) * D + 8 * j + 2 * q4 + 1] = o[j][1];
            if (q4 == 0) redm[warp * NH + hq] = m, redl[warp * NH + hq] = l;
        }
    }
    __syncthreads();
    for (int oi = threadIdx.x; oi < NH * D; oi += ATT_THREADS) {
        const int h = oi / D, j = oi % D;
        float M = -INFINITY, L = 0.0f, O = 0.0f;
#pragma unroll
        for (int w = 0; w < ATT_WARPS; w++) M = fmaxf(M, redm[w * NH + h]);
#pragma unroll
        for (int w = 0; w < ATT_WARPS; w++) {
            const float mw = redm[w * NH + h];
            if (mw == -INFINITY) continue;
            const float f = __expf(mw - M);
            L += redl[w * NH + h] * f;
            O += red[(w * NH + h) * D + j] * f;
        }
        emit(h, j, M, L, O);
    }
}

/* Threads of a block that merges one row's partials. */
#define RED_THREADS 256
struct red_max {
    __device__ float operator()(float x, float y) const { return fmaxf(x, y); }
};
/* Merge one row's n_split partials (part: (n_split, D) unnormalised
 * outputs, part_ml: (n_split, 2) their max and sum) by their maxima into
 * out (D); ml (2), when not NULL, gets the final max and sum. Called by
 * all RED_THREADS threads of a block. Thread s < n_split takes split s's
 * weight exp(m_s - M); warp w sums the splits w, w + 8, ... in float4
 * columns; the warps' sums meet in shared memory. (A thread per column
 * looping over every split left B = 1 rows with 50+ splits latency-bound:
 * 10 µs.) */
__device__ __forceinline__ void attend_reduce_row(const float *__restrict__ part, const float *__restrict__ part_ml,
                                                  int n_split, int D, float *__restrict__ out,
                                                  float *__restrict__ ml) {
    typedef cub::BlockReduce<float, RED_THREADS> red_t;
    __shared__ typename red_t::TempStorage tmp;
    __shared__ float wts[LK_GPU_MAX_SPLIT], sum[RED_THREADS / 32][256], sML[2];
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const float m = tid < n_split ? part_ml[2 * tid] : -INFINITY;
    const float M = red_t(tmp).Reduce(m, red_max());
    if (tid == 0) sML[0] = M;
    __syncthreads();
    const float w = m == -INFINITY ? 0.0f : __expf(m - sML[0]);
    if (tid < LK_GPU_MAX_SPLIT) wts[tid] = w;
    const float L = red_t(tmp).Sum(tid < n_split ? w * part_ml[2 * tid + 1] : 0.0f);
    if (tid == 0) sML[1] = L;
    __syncthreads();
    for (int c0 = lane * 4; c0 < D; c0 += 128) {
        float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        for (int sp = warp; sp < n_split; sp += RED_THREADS / 32) {
            const float ws = wts[sp];
            if (ws == 0.0f) continue;
            const float4 v = *(const float4 *)(part + (size_t)sp * D + c0);
            acc.x += ws * v.x, acc.y += ws * v.y, acc.z += ws * v.z, acc.w += ws * v.w;
        }
        sum[warp][c0] = acc.x, sum[warp][c0 + 1] = acc.y, sum[warp][c0 + 2] = acc.z, sum[warp][c0 + 3] = acc.w;
    }
    __syncthreads();
    for (int j = tid; j < D; j += RED_THREADS) {
        float O = 0.0f;
#pragma unroll
        for (int w8 = 0; w8 < RED_THREADS / 32; w8++) O += sum[w8][j];
        out[j] = O / sML[1];
    }
    if (ml && tid == 0) ml[0] = sML[0], ml[1] = sML[1];
}

/* A kernel configuration as a type: head dim, heads per block, cp.async
 * stages, and whether the tiles carry the selection's first-d scores. */
template <int D_, int NH_, int STAGES_, bool LSC_> struct att_kind {
    static constexpr int D = D_, NH = NH_, STAGES = STAGES_;
    static constexpr bool LSC = LSC_;
};

template <int D, int NH, typename F> static inline cudaError_t attend_dispatch_dn(const lk_attend_args *a, F f) {
#ifdef LK_ATT_ALL3 /* dev/cuda variant: 3 stages everywhere */
    if constexpr (D <= 128) return f(att_kind<D, NH, 3, false>{});
#endif
#ifndef LK_ATT_DENSE2 /* dev/cuda variant: dense MHA 2 stages deep (3 blocks per SM) */
    if constexpr (D <= 128 && NH == 1)
        if (!a->idx) return f(att_kind<D, NH, 3, false>{});
#endif
    if constexpr (NH == 1)
        if (a->idx && a->lsc && !a->lowrank) return f(att_kind<D, NH, 2, true>{});
    return f(att_kind<D, NH, 2, false>{});
}

template <int D, typename F> static inline cudaError_t attend_dispatch_d(const lk_attend_args *a, F f) {
    switch (a->nh) {
    case 1: return attend_dispatch_dn<D, 1>(a, f);
    case 2: return attend_dispatch_dn<D, 2>(a, f);
    case 3: return attend_dispatch_dn<D, 3>(a, f);
    case 4: return attend_dispatch_dn<D, 4>(a, f);
    case 6: return attend_dispatch_dn<D, 6>(a, f);
    case 8: return attend_dispatch_dn<D, 8>(a, f);
    default: return cudaErrorInvalidValue;
    }
}

/* f(att_kind<...>{}) for the configuration that serves a: dense MHA
 * streams best 3 stages deep (2 blocks per SM), gathers and GQA groups 2
 * deep (3 blocks per SM; measured on the H200, docs/RESULTS.md). */
template <typename F> static inline cudaError_t attend_dispatch(const lk_attend_args *a, F f) {
    switch (a->kv.D) {
    case 64: return attend_dispatch_d<64>(a, f);
    case 128: return attend_dispatch_d<128>(a, f);
    case 256: return attend_dispatch_d<256>(a, f);
    default: return cudaErrorInvalidValue;
    }
}

#endif
