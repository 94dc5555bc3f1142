/*
 * calib.cu - key statistics of a calibration accumulated on the GPU in
 * float64 (interface, sums and contracts: cuda/lk_cuda_calib.h; the CPU
 * twin is src/calib/calib.c).
 *
 * One add is one kernel launch. Block (t, h) owns head h and one
 * CAL_TILE x CAL_TILE tile (ti, tj), ti <= tj, of that head's (D, D)
 * Σ(k - s)(k - s)ᵀ: only the tiles of the upper triangle are computed
 * (a tile on the diagonal also fills its own lower half, which nobody
 * reads). The block walks all n rows in chunks of CAL_ROWS: the chunk's
 * columns of tile ti and of tile tj are loaded (coalesced: 32 consecutive
 * floats of a key row per warp), widened to double, shifted and staged in
 * shared memory; each of the 64 threads then accumulates a 4 x 4 set of
 * entries (rows ty + 8i, columns tx + 8j: conflict-free shared loads) in
 * registers over the chunk. At the end the block adds its tile to the
 * running totals in global memory (one block per entry and one launch at a
 * time on the stream: no atomics, so the totals are reproducible bit for
 * bit). The diagonal tile's block also sums its columns (Σ(k - s)). The
 * first add of a (basis, layer) takes row 0 of each head as the shift and
 * stores its totals instead of adding them, so nothing needs zeroing.
 *
 * Cost: n·Hkv·D²/2 double FMAs per add (67 M for n = 512, Hkv = 8,
 * D = 128: tens of microseconds), next to a forward pass that takes
 * milliseconds; the launch has Hkv·T(T+1)/2 blocks, T = D/32 tiles per side.
 */
#include "cuda/common.cuh"

extern "C" {
#include "cuda/lk_cuda_calib.h"
}

#include <stdlib.h>
#include <string.h>

#define CAL_BASES 2     /* LK_PCA_N_BASIS (calib/pca.h): pre and post RoPE */
#define CAL_TILE 32     /* side of a block's output tile */
#define CAL_ROWS 32     /* key rows staged in shared memory per step */
#define CAL_THREADS 64  /* 8 x 8 threads, each 4 x 4 entries of the tile */
#define CAL_MAX_D 256

struct lk_cuda_calib {
    lk_cuda *cu;          /* borrowed */
    int32_t L, Hkv, D;
    int64_t *count;       /* host (B, L): keys added per (basis, layer) */
    double *shift;        /* device (B, L, Hkv, D) first key seen */
    double *sum;          /* device (B, L, Hkv, D) Σ(k - shift) */
    double *sumsq;        /* device (B, L, Hkv, D, D) upper tiles of Σ(k - shift)(k - shift)ᵀ */
    int32_t *nonfinite;   /* device (B, L) 1: a NaN or Inf key was added */
};

/* ------------------------------------------------------------ kernel */

/* Add Σ over the n rows of k (n, Hkv, D) of (k - s)(k - s)ᵀ (tile
 * blockIdx.x of the upper triangle, head blockIdx.y) to sumsq (Hkv, D, D),
 * and Σ(k - s) to sum (Hkv, D) (diagonal tiles); shift (Hkv, D). first:
 * s = row 0 of k, written to shift, and the totals are stored, not added.
 * Any NaN / Inf component read sets *nonfinite. */
__global__ void __launch_bounds__(CAL_THREADS)
calib_add_kernel(const float *__restrict__ k, int32_t n, int Hkv, int D, int first, double *__restrict__ shift,
                 double *__restrict__ sum, double *__restrict__ sumsq, int32_t *__restrict__ nonfinite) {
    __shared__ double sa[CAL_ROWS][CAL_TILE]; /* rows of the chunk, columns of tile ti, minus the shift */
    __shared__ double sb[CAL_ROWS][CAL_TILE]; /* the same for tile tj (unused on the diagonal) */
    __shared__ double ss[2][CAL_TILE];        /* the shift of tile ti's and tile tj's columns */
    const int h = blockIdx.y, tid = threadIdx.x, tx = tid % 8, ty = tid / 8;
    /* tile (ti, tj) of the upper triangle, numbered row by row */
    const int nt = (D + CAL_TILE - 1) / CAL_TILE;
    int t = blockIdx.x, ti = 0;
    while (t >= nt - ti) t -= nt - ti, ti++;
    const int tj = ti + t;
    const bool diag = ti == tj;
    double *sh = shift + (size_t)h * D;
    const float *kh = k + (size_t)h * D; /* row 0 of head h */
    for (int e = tid; e < 2 * CAL_TILE; e += CAL_THREADS) {
        const int which = e / CAL_TILE, c = e % CAL_TILE, col = (which ? tj : ti) * CAL_TILE + c;
        double s = 0.0;
        if (col < D) s = first ? (double)kh[col] : sh[col];
        ss[which][c] = s;
        if (first && diag && which == 0 && col < D) sh[col] = s; /* each column has one diagonal tile */
    }
    __syncthreads();

    double acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0;
    double csum = 0.0; /* diagonal tiles: thread c < CAL_TILE sums column c */
    bool bad = false;
    double(*sbt)[CAL_TILE] = diag ? sa : sb;
    const int staged = (diag ? 1 : 2) * CAL_ROWS * CAL_TILE;
    for (int32_t r0 = 0; r0 < n; r0 += CAL_ROWS) {
        for (int e = tid; e < staged; e += CAL_THREADS) {
            const int which = e / (CAL_ROWS * CAL_TILE), r = (e / CAL_TILE) % CAL_ROWS, c = e % CAL_TILE;
            const int col = (which ? tj : ti) * CAL_TILE + c;
            const int32_t row = r0 + r;
            double v = 0.0; /* rows past n and columns past D add nothing */
            if (row < n && col < D) {
                const float x = k[((size_t)row * Hkv + h) * D + col];
                bad |= !isfinite(x);
                v = (double)x - ss[which][c]; /* calib.c: (double)k - shift */
            }
            (which ? sb : sa)[r][c] = v;
        }
        __syncthreads();
#pragma unroll 4
        for (int r = 0; r < CAL_ROWS; r++) {
            double a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++) a[i] = sa[r][ty + 8 * i], b[i] = sbt[r][tx + 8 * i];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
        if (diag && tid < CAL_TILE)
            for (int r = 0; r < CAL_ROWS; r++) csum += sa[r][tid];
        __syncthreads();
    }
    if (bad) *nonfinite = 1;

    double *S = sumsq + (size_t)h * D * D; /* (D, D) */
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int row = ti * CAL_TILE + ty + 8 * i;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int col = tj * CAL_TILE + tx + 8 * j;
            if (row < D && col < D) {
                const size_t o = (size_t)row * D + col;
                S[o] = first ? acc[i][j] : S[o] + acc[i][j];
            }
        }
    }
    if (diag && tid < CAL_TILE) {
        const int col = ti * CAL_TILE + tid;
        double *sm = sum + (size_t)h * D;
        if (col < D) sm[col] = first ? csum : sm[col] + csum;
    }
}

/* ------------------------------------------------------------ interface */

/* Offset of (basis, layer)'s first head in arrays of (B, L, Hkv, per) elements. */
static size_t head0(const lk_cuda_calib *a, int basis, int layer, size_t per) {
    return ((size_t)basis * a->L + layer) * a->Hkv * per;
}

static bool bad_slot(const lk_cuda_calib *a, int basis, int layer) {
    return basis < 0 || basis >= CAL_BASES || layer < 0 || layer >= a->L;
}

extern "C" loki_status lk_cuda_calib_init(lk_cuda *cu, lk_cuda_calib **out, int32_t n_layer, int32_t n_head_kv,
                                          int32_t head_dim, loki_error *err) {
    *out = NULL;
    if (n_layer < 1 || n_layer > 65536 || n_head_kv < 1 || n_head_kv > 65535 || head_dim < 8 ||
        head_dim > CAL_MAX_D || head_dim % 8)
        return lk_fail(err, LOKI_ERR_ARG,
                       "GPU calibration: %d layers x %d KV heads x %d dims is out of range (head_dim a multiple "
                       "of 8 up to %d)", n_layer, n_head_kv, head_dim, CAL_MAX_D);
    lk_cuda_calib *a = (lk_cuda_calib *)lk_calloc(1, sizeof *a, err);
    if (!a) return LOKI_ERR_NOMEM;
    loki_status st = LOKI_OK;
    const size_t heads = (size_t)CAL_BASES * n_layer * n_head_kv, D = (size_t)head_dim;
    a->cu = cu;
    a->L = n_layer, a->Hkv = n_head_kv, a->D = head_dim;
    void *p[4] = {NULL, NULL, NULL, NULL};
    if (!(a->count = (int64_t *)lk_calloc((size_t)CAL_BASES * n_layer, sizeof(int64_t), err))) {
        st = LOKI_ERR_NOMEM;
        goto fail;
    }
    if ((st = lk_cuda_alloc(cu, &p[0], heads * D * sizeof(double), "calibration shifts", err))) goto fail;
    a->shift = (double *)p[0];
    if ((st = lk_cuda_alloc(cu, &p[1], heads * D * sizeof(double), "calibration sums", err))) goto fail;
    a->sum = (double *)p[1];
    if ((st = lk_cuda_alloc(cu, &p[2], heads * D * D * sizeof(double), "calibration sums of products", err)))
        goto fail;
    a->sumsq = (double *)p[2];
    if ((st = lk_cuda_alloc(cu, &p[3], (size_t)CAL_BASES * n_layer * sizeof(int32_t), "calibration flags", err)))
        goto fail;
    a->nonfinite = (int32_t *)p[3];
    LK_CUDA_TRY(cudaMemsetAsync(a->nonfinite, 0, (size_t)CAL_BASES * n_layer * sizeof(int32_t), cu->stream));
    *out = a;
    return LOKI_OK;
fail:
    lk_cuda_calib_free(a);
    return st;
}

extern "C" void lk_cuda_calib_free(lk_cuda_calib *a) {
    if (!a) return;
    lk_cuda_dealloc(a->cu, a->shift);
    lk_cuda_dealloc(a->cu, a->sum);
    lk_cuda_dealloc(a->cu, a->sumsq);
    lk_cuda_dealloc(a->cu, a->nonfinite);
    free(a->count);
    free(a);
}

extern "C" loki_status lk_cuda_calib_add(lk_cuda_calib *a, int basis, int layer, const float *k, int32_t n,
                                         loki_error *err) {
    if (bad_slot(a, basis, layer) || n < 0)
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_calib_add: basis %d, layer %d (of %d), n %d out of range", basis,
                       layer, a->L, n);
    if (n == 0) return LOKI_OK;
    loki_status st = LOKI_OK;
    int64_t *count = &a->count[(size_t)basis * a->L + layer];
    const int nt = (a->D + CAL_TILE - 1) / CAL_TILE;
    const dim3 grid((unsigned)(nt * (nt + 1) / 2), (unsigned)a->Hkv);
    calib_add_kernel<<<grid, CAL_THREADS, 0, a->cu->stream>>>(
        k, n, a->Hkv, a->D, *count == 0, a->shift + head0(a, basis, layer, a->D), a->sum + head0(a, basis, layer, a->D),
        a->sumsq + head0(a, basis, layer, (size_t)a->D * a->D), a->nonfinite + (size_t)basis * a->L + layer);
    LK_CUDA_LAUNCHED();
    *count += n;
fail:
    return st;
}

extern "C" int64_t lk_cuda_calib_count(const lk_cuda_calib *a, int basis, int layer) {
    return bad_slot(a, basis, layer) ? 0 : a->count[(size_t)basis * a->L + layer];
}

extern "C" loki_status lk_cuda_calib_read(lk_cuda_calib *a, int basis, int layer, int64_t *count, double *shift,
                                          double *sum, double *sumsq, bool *nonfinite, loki_error *err) {
    if (bad_slot(a, basis, layer))
        return lk_fail(err, LOKI_ERR_ARG, "lk_cuda_calib_read: basis %d, layer %d (of %d) out of range", basis, layer,
                       a->L);
    loki_status st = LOKI_OK;
    const size_t Hkv = (size_t)a->Hkv, D = (size_t)a->D;
    const int64_t n = a->count[(size_t)basis * a->L + layer];
    int32_t flag = 0;
    cudaStream_t s = a->cu->stream;
    *count = n;
    *nonfinite = false;
    if (n == 0) { /* nothing added: the device arrays hold no totals of this slot */
        memset(shift, 0, Hkv * D * sizeof(double));
        memset(sum, 0, Hkv * D * sizeof(double));
        memset(sumsq, 0, Hkv * D * D * sizeof(double));
        return lk_cuda_sync(a->cu, err); /* still surfaces an earlier fault */
    }
    LK_CUDA_TRY(cudaMemcpyAsync(shift, a->shift + head0(a, basis, layer, D), Hkv * D * sizeof(double),
                                cudaMemcpyDeviceToHost, s));
    LK_CUDA_TRY(cudaMemcpyAsync(sum, a->sum + head0(a, basis, layer, D), Hkv * D * sizeof(double),
                                cudaMemcpyDeviceToHost, s));
    LK_CUDA_TRY(cudaMemcpyAsync(sumsq, a->sumsq + head0(a, basis, layer, D * D), Hkv * D * D * sizeof(double),
                                cudaMemcpyDeviceToHost, s));
    LK_CUDA_TRY(cudaMemcpyAsync(&flag, a->nonfinite + (size_t)basis * a->L + layer, sizeof flag,
                                cudaMemcpyDeviceToHost, s));
    LK_CUDA_TRY(cudaStreamSynchronize(s));
    for (size_t h = 0; h < Hkv; h++) /* the strict lower triangle: 0, as calib.c leaves it */
        for (size_t i = 1; i < D; i++) memset(sumsq + (h * D + i) * D, 0, i * sizeof(double));
    *nonfinite = flag != 0;
fail:
    return st;
}

extern "C" loki_status lk_cuda_calib_reset(lk_cuda_calib *a, loki_error *err) {
    loki_status st = LOKI_OK;
    memset(a->count, 0, (size_t)CAL_BASES * a->L * sizeof(int64_t));
    LK_CUDA_TRY(cudaMemsetAsync(a->nonfinite, 0, (size_t)CAL_BASES * a->L * sizeof(int32_t), a->cu->stream));
fail:
    return st;
}
