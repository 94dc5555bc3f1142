/*
 * rotate_tile.cuh - y = C x for a tile of rows of one head (the rotation
 * into the PCA basis), shared by the q rotation (rotate.cu) and the KV
 * store (kv_cache.cu).
 *
 * Shape: a block of LK_ROT_WARPS warps takes LK_ROT_T rows (tokens) of one
 * head, staged in shared memory; a warp takes LK_ROT_OPW output components
 * at a time and reads those rows of C (D, D) with the lanes along each row
 * (coalesced; each row read once for all the tile's tokens), then sums every
 * token's product with a butterfly. A prompt
 * of n tokens so reads C n / LK_ROT_T times instead of n times, and no
 * warp walks down a column of C (the older one-thread-per-component kernel
 * did: 32 cache lines per warp load, about 2 ms a layer for a 512-token
 * prompt of Llama-2-7B's shape). All LK_ROT_OPW rows' loads of a warp are
 * issued before the first is used.
 */
#pragma once

#include "cuda/common.cuh"

#define LK_ROT_T 8     /* rows (tokens) per block */
#define LK_ROT_OPW 8   /* output components per warp */
#define LK_ROT_WARPS 4 /* 128 threads: 32 components per block */
#define LK_ROT_DMAX 256

/* Stage rows r0 .. r0 + rows - 1 (rows <= LK_ROT_T) of one head's vectors
 * (src + r * ld: the D values of row r) into xs (LK_ROT_T, D) f32; rows past
 * `rows` are zeroed. Ends with a block barrier. */
__device__ __forceinline__ void lk_rot_stage(float *xs, const float *__restrict__ src, size_t ld, int rows, int D) {
    for (int e = threadIdx.x; e < LK_ROT_T * D; e += blockDim.x) {
        const int t = e / D, i = e - t * D;
        xs[e] = t < rows ? src[(size_t)t * ld + i] : 0.0f;
    }
    __syncthreads();
}

/* For the components j = jb + o (o < LK_ROT_OPW, j < D) by one warp:
 * y_t = C[j] · xs[t] (f32, rows of C = PCA axes) for t < rows;
 * store(t, j, y_t) is called by lane t. C: (D, D) of the rows' head. */
template <class Store>
__device__ __forceinline__ void lk_rot_tile(const float *__restrict__ C, const float *xs, int rows, int D, int jb,
                                            Store store) {
    const int lane = threadIdx.x & 31;
    float c[LK_ROT_OPW][LK_ROT_DMAX / 32];
#pragma unroll
    for (int o = 0; o < LK_ROT_OPW; o++) /* every load of the warp issued before the first use */
#pragma unroll
        for (int k = 0; k < LK_ROT_DMAX / 32; k++) {
            const int j = jb + o, i = lane + 32 * k;
            c[o][k] = j < D && i < D ? __ldg(C + (size_t)j * D + i) : 0.0f;
        }
#pragma unroll
    for (int o = 0; o < LK_ROT_OPW; o++) {
        const int j = jb + o;
        if (j >= D) break;
        float mine = 0.0f;
#pragma unroll
        for (int t = 0; t < LK_ROT_T; t++) {
            if (t >= rows) break;
            float a = 0.0f;
#pragma unroll
            for (int k = 0; k < LK_ROT_DMAX / 32; k++)
                if (lane + 32 * k < D) a = fmaf(c[o][k], xs[t * D + lane + 32 * k], a);
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) a += __shfl_xor_sync(0xffffffffu, a, off);
            if (lane == t) mine = a;
        }
        if (lane < rows) store(lane, j, mine);
    }
}
