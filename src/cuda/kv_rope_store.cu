/*
 * kv_rope_store.cu - a decode step's q/k/v from the products to the cache in
 * one kernel: RoPE on q and k, the rotation into the PCA basis (q out of
 * place, k as it is stored), the query scale folded into q, and the key and
 * value rounded to bf16 and stored (split at d) at the rows' cache slots.
 *
 * Why: launched one by one these are five kernels a layer (rope q, rope k,
 * rotate q, store, scale), each a few microseconds of launch and dependent
 * loads for a few kilobytes of data: about 0.4 ms of a Llama-2-7B Loki decode
 * step (docs/GPU.md, session 14's ncu view). Issue 9 item 3 names this fusion.
 *
 * Shape: grid (ceil(D / 32), Hkv, n), 128 threads. A block takes one KV head
 * g of one row r and 32 output components j0..j0+31: it stages the G query
 * heads of the group and the key, RoPE applied, in shared memory (every
 * block of the row does this for its own 32 components: the inputs are a
 * few KB from L2), then each warp takes whole vectors (warp w: vectors w,
 * w + 4, ...) and each lane one output component c = j0 + lane:
 * y_c = sum_i C[c][i] x_i in ascending i (the 32 rows of C staged once per
 * block, padded against bank conflicts, loaded before the dependent-launch
 * wait since C does not depend on the kernels before).
 *
 * RoPE is the rope kernel's arithmetic (ops.cu) bit for bit, and the store
 * the store kernel's rounding, so without a rotation the cache and q equal
 * the unfused path's exactly; with one the sum order differs from the tiled
 * rotation (rotate_tile.cuh) by float rounding only.
 */
#include "cuda/common.cuh"

#define LK_RS_THREADS 128
#define LK_RS_COMP 32 /* output components per block */
#define LK_RS_U 8     /* 16-byte loads of C in flight per thread (a D = 128 block: all of its 8) */

/* Floats of shared memory the kernel needs: xs (G + 1, D), cos/sin (half),
 * rows of C (32, D + 1) when rotating. */
static size_t rs_smem_floats(int G, int D, int half, bool rot) {
    return (size_t)(G + 1) * D + 2 * (size_t)half + (rot ? (size_t)LK_RS_COMP * (D + 1) : 0);
}

__global__ void __launch_bounds__(LK_RS_THREADS)
    kv_rope_store_kernel(uint16_t *pool, const int32_t *__restrict__ dsplit, int32_t n_pages, int Hkv, int D,
                         int layer, int H, const float *__restrict__ q, float *__restrict__ qo,
                         const float *__restrict__ k, const float *__restrict__ v, const int32_t *__restrict__ slots,
                         const int32_t *__restrict__ pos, const float *__restrict__ inv_freq, int half, int neox,
                         const float *__restrict__ rot, float q_scale) {
    extern __shared__ float sm[];
    const int G = H / Hkv, V = G + 1;
    float *xs = sm;               /* (V, D): the group's q heads, then the key, after RoPE */
    float *cs = xs + V * D;       /* (half) */
    float *sn = cs + half;        /* (half) */
    float *Cs = sn + half;        /* (32, D + 1): rows j0.. of C */
    const int g = blockIdx.y, r = blockIdx.z, j0 = blockIdx.x * LK_RS_COMP;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int nrow = min(LK_RS_COMP, D - j0);
    if (rot) { /* constant data: staged while the kernel before still runs */
        /* 16-byte loads, LK_RS_U of them in flight per thread before the
         * first store (D % 4 == 0: rows of C start 16-byte aligned). The 4-byte
         * loads one at a time made this 16 KiB a latency chain per block
         * (the rotation added 4.3 us to the kernel, ncu, session 16). */
        const float4 *C4 = (const float4 *)(rot + ((size_t)layer * Hkv + g) * D * D + (size_t)j0 * D);
        const int n4 = nrow * D / 4;
        for (int e0 = tid; e0 < n4; e0 += LK_RS_U * LK_RS_THREADS) {
            float4 c4[LK_RS_U];
#pragma unroll
            for (int u = 0; u < LK_RS_U; u++) {
                const int e = e0 + u * LK_RS_THREADS;
                c4[u] = e < n4 ? __ldg(C4 + e) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            }
#pragma unroll
            for (int u = 0; u < LK_RS_U; u++) {
                const int e = e0 + u * LK_RS_THREADS, jj = 4 * e / D, i = 4 * e - jj * D;
                if (e >= n4) break;
                float *dst = Cs + jj * (D + 1) + i; /* rows padded against bank conflicts: scalar stores */
                dst[0] = c4[u].x, dst[1] = c4[u].y, dst[2] = c4[u].z, dst[3] = c4[u].w;
            }
        }
    }
    lk_pdl_wait(); /* q, k, v, pos and slots come from the kernels before */
    lk_pdl_release();
    const float p = (float)pos[r];
    for (int i = tid; i < half; i += LK_RS_THREADS) sincosf(__fmul_rn(p, inv_freq[i]), &sn[i], &cs[i]);
    __syncthreads();
    /* RoPE: pair (i, i + half) for neox, else (2i, 2i + 1); components past 2 half unchanged */
    for (int e = tid; e < V * D; e += LK_RS_THREADS) {
        const int vh = e / D, i = e - vh * D;
        const float *src = vh < G ? q + ((size_t)r * H + (size_t)g * G + vh) * D : k + ((size_t)r * Hkv + g) * D;
        float y = src[i];
        if (i < 2 * half) {
            const bool first = neox ? i < half : (i & 1) == 0;
            const int pi = neox ? (first ? i : i - half) : i >> 1;
            const int partner = neox ? (first ? i + half : i - half) : i ^ 1;
            const float o = src[partner];
            y = first ? __fsub_rn(__fmul_rn(y, cs[pi]), __fmul_rn(o, sn[pi]))
                      : __fadd_rn(__fmul_rn(y, cs[pi]), __fmul_rn(o, sn[pi]));
        }
        xs[e] = y;
    }
    __syncthreads();
    const int c = j0 + lane; /* this lane's output component */
    const int32_t slot = slots[r], page = slot / LK_GPU_PAGE, pp = slot % LK_GPU_PAGE;
    uint16_t *seg = pool + lk_seg_offset(layer, page, g, n_pages, Hkv, D);
    if (lane < nrow) {
        for (int vh = warp; vh < V; vh += LK_RS_THREADS / 32) {
            float y;
            if (rot) {
                const float *crow = Cs + lane * (D + 1), *x = xs + vh * D;
                y = 0.0f;
                for (int i = 0; i < D; i++) y = fmaf(crow[i], x[i], y);
            } else {
                y = xs[vh * D + c];
            }
            if (vh < G) {
                qo[((size_t)r * H + (size_t)g * G + vh) * D + c] = __fmul_rn(y, q_scale);
            } else {
                const int d = dsplit[layer * Hkv + g];
                const size_t koff =
                    c < d ? (size_t)pp * d + c : (size_t)LK_GPU_PAGE * d + (size_t)pp * (D - d) + (c - d);
                seg[koff] = lk_dev_f32_to_bf16(y);
            }
        }
        if (warp == LK_RS_THREADS / 32 - 1) /* the value's components, unrotated */
            seg[(size_t)LK_GPU_PAGE * D + (size_t)pp * D + c] =
                lk_dev_f32_to_bf16(v[((size_t)r * Hkv + g) * D + c]);
    }
}

extern "C" bool lk_gpu_kv_rope_store_fits(int n_head, int n_head_kv, int head_dim, int rope_dim, bool rot) {
    if (n_head_kv < 1 || n_head < n_head_kv || n_head % n_head_kv || head_dim < 8 || head_dim > 256 || head_dim % 4 ||
        rope_dim < 2 || rope_dim % 2 ||
        rope_dim > head_dim)
        return false;
    return rs_smem_floats(n_head / n_head_kv, head_dim, rope_dim / 2, rot) * sizeof(float) <= 48 * 1024;
}

extern "C" loki_status lk_gpu_kv_rope_store(lk_gpu_kv *kv, int layer, int32_t n, int n_head, const float *q,
                                            float *q_out, const float *k, const float *v, const int32_t *slots,
                                            const int32_t *pos, const float *inv_freq, int rope_dim, int neox,
                                            const float *rot, float q_scale, loki_error *err) {
    loki_status st = LOKI_OK;
    const int D = kv->head_dim, Hkv = kv->n_head_kv;
    if (layer < 0 || layer >= kv->n_layer || n < 0 || n > 65535 ||
        !lk_gpu_kv_rope_store_fits(n_head, Hkv, D, rope_dim, rot))
        return lk_fail(err, LOKI_ERR_ARG,
                       "GPU RoPE + store: layer %d, rows %d, heads %d / %d, head_dim %d, rope_dim %d not supported",
                       layer, n, n_head, Hkv, D, rope_dim);
    if (n == 0) return LOKI_OK;
    if (!q || !q_out || !k || !v || !slots || !pos || !inv_freq)
        return lk_fail(err, LOKI_ERR_ARG, "GPU RoPE + store: a NULL buffer");
    {
        const size_t smem = rs_smem_floats(n_head / Hkv, D, rope_dim / 2, rot) * sizeof(float);
        const dim3 grid((unsigned)((D + LK_RS_COMP - 1) / LK_RS_COMP), (unsigned)Hkv, (unsigned)n);
        (void)lk_launch_kernel(kv_rope_store_kernel, grid, LK_RS_THREADS, smem, kv->cu->stream, true, 0, kv->pool,
                               kv->d_dev, kv->n_pages, Hkv, D, layer, n_head, q, q_out, k, v, slots, pos, inv_freq,
                               rope_dim / 2, neox, rot, q_scale);
        LK_CUDA_LAUNCHED();
    }
fail:
    return st;
}
