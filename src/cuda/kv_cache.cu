/*
 * kv_cache.cu - the paged bf16 KV cache (layout in lk_cuda.h): allocation,
 * the page allocator and block tables (host side, mirrored to the device),
 * the store kernel that rotates keys into the PCA basis and splits them at
 * d, a read-back for tests and a synthetic fill for benchmarks.
 */
#include "cuda/rotate_tile.cuh"

#include <math.h>
#include <stdlib.h>
#include <string.h>

extern "C" loki_status lk_gpu_kv_init(lk_cuda *cu, lk_gpu_kv **out, int32_t n_layer, int32_t n_head_kv,
                                      int32_t head_dim, const int32_t *d, int32_t n_pages, int32_t max_seqs,
                                      int32_t max_pages_per_seq, loki_error *err) {
    *out = NULL;
    if (n_layer < 1 || n_head_kv < 1 || head_dim < 8 || head_dim > 256 || head_dim % 8 || n_pages < 1 ||
        max_seqs < 1 || max_pages_per_seq < 1)
        return lk_fail(err, LOKI_ERR_ARG,
                       "GPU KV cache: bad shape (layers %d, KV heads %d, head_dim %d (a multiple of 8 up to 256), "
                       "pages %d, sequences %d, pages per sequence %d)",
                       n_layer, n_head_kv, head_dim, n_pages, max_seqs, max_pages_per_seq);
    for (int i = 0; d && i < n_layer * n_head_kv; i++)
        if (d[i] < 8 || d[i] > head_dim || d[i] % 8)
            return lk_fail(err, LOKI_ERR_ARG, "GPU KV cache: split dim %d of head %d is not a multiple of 8 in [8, %d]",
                           d[i], i, head_dim);
    lk_gpu_kv *kv = (lk_gpu_kv *)lk_calloc(1, sizeof *kv, err);
    if (!kv) return LOKI_ERR_NOMEM;
    loki_status st = LOKI_OK;
    const size_t LH = (size_t)n_layer * n_head_kv, nbt = (size_t)max_seqs * max_pages_per_seq;
    const size_t pool_bytes = (size_t)n_layer * n_pages * n_head_kv * lk_seg_elems(head_dim) * 2;
    kv->cu = cu;
    kv->n_layer = n_layer, kv->n_head_kv = n_head_kv, kv->head_dim = head_dim, kv->n_pages = n_pages;
    kv->max_seqs = max_seqs, kv->max_pages_per_seq = max_pages_per_seq;
    if (!(kv->d_host = (int32_t *)lk_calloc(LH, 4, err)) || !(kv->bt_host = (int32_t *)lk_calloc(nbt, 4, err)) ||
        !(kv->len_host = (int32_t *)lk_calloc((size_t)max_seqs, 4, err)) ||
        !(kv->free_pages = (int32_t *)lk_calloc((size_t)n_pages, 4, err))) {
        st = LOKI_ERR_NOMEM;
        goto fail;
    }
    for (size_t i = 0; i < LH; i++) kv->d_host[i] = d ? d[i] : head_dim;
    for (size_t i = 0; i < nbt; i++) kv->bt_host[i] = -1;
    for (int32_t i = 0; i < n_pages; i++) kv->free_pages[i] = n_pages - 1 - i; /* pop gives 0, 1, 2, ... */
    kv->n_free = n_pages;
    if ((st = lk_cuda_alloc(cu, (void **)&kv->pool, pool_bytes, "the KV cache", err)) ||
        (st = lk_cuda_alloc(cu, (void **)&kv->d_dev, LH * 4, "the KV cache", err)) ||
        (st = lk_cuda_alloc(cu, (void **)&kv->block_table, nbt * 4, "the KV cache", err)) ||
        (st = lk_cuda_alloc(cu, (void **)&kv->seq_len, (size_t)max_seqs * 4, "the KV cache", err)) ||
        (st = lk_cuda_upload(cu, kv->d_dev, kv->d_host, LH * 4, err)) ||
        (st = lk_cuda_upload(cu, kv->block_table, kv->bt_host, nbt * 4, err)) ||
        (st = lk_cuda_upload(cu, kv->seq_len, kv->len_host, (size_t)max_seqs * 4, err)))
        goto fail;
    *out = kv;
    return LOKI_OK;
fail:
    lk_gpu_kv_free(kv);
    return st;
}

extern "C" void lk_gpu_kv_free(lk_gpu_kv *kv) {
    if (!kv) return;
    lk_cuda_dealloc(kv->cu, kv->pool);
    lk_cuda_dealloc(kv->cu, kv->d_dev);
    lk_cuda_dealloc(kv->cu, kv->block_table);
    lk_cuda_dealloc(kv->cu, kv->seq_len);
    free(kv->d_host);
    free(kv->bt_host);
    free(kv->len_host);
    free(kv->free_pages);
    free(kv);
}

static loki_status check_seq(const lk_gpu_kv *kv, int32_t seq, loki_error *err) {
    if (seq < 0 || seq >= kv->max_seqs)
        return lk_fail(err, LOKI_ERR_ARG, "GPU KV cache: sequence %d out of range (0..%d)", seq, kv->max_seqs - 1);
    return LOKI_OK;
}

extern "C" loki_status lk_gpu_kv_reserve(lk_gpu_kv *kv, int32_t seq, int32_t n_tokens, loki_error *err) {
    loki_status st = check_seq(kv, seq, err);
    if (st) return st;
    int32_t *row = kv->bt_host + (size_t)seq * kv->max_pages_per_seq;
    int64_t need = ((int64_t)n_tokens + LK_GPU_PAGE - 1) / LK_GPU_PAGE;
    if (need > kv->max_pages_per_seq)
        return lk_fail(err, LOKI_ERR_RANGE, "GPU KV cache: %d tokens need %lld pages, a sequence holds %d", n_tokens,
                       (long long)need, kv->max_pages_per_seq);
    int32_t have = 0;
    while (have < kv->max_pages_per_seq && row[have] >= 0) have++;
    if (need - have > kv->n_free)
        return lk_fail(err, LOKI_ERR_RANGE, "GPU KV cache: %lld more pages needed, %d free", (long long)(need - have),
                       kv->n_free);
    if (need <= have) return LOKI_OK; /* the device row is current (release and init upload it too) */
    for (int32_t i = have; i < need; i++) row[i] = kv->free_pages[--kv->n_free];
    return lk_cuda_upload(kv->cu, kv->block_table + (size_t)seq * kv->max_pages_per_seq, row,
                          sizeof(int32_t) * (size_t)kv->max_pages_per_seq, err);
}

extern "C" void lk_gpu_kv_release(lk_gpu_kv *kv, int32_t seq) {
    if (seq < 0 || seq >= kv->max_seqs) return;
    int32_t *row = kv->bt_host + (size_t)seq * kv->max_pages_per_seq;
    for (int32_t i = 0; i < kv->max_pages_per_seq && row[i] >= 0; i++) {
        kv->free_pages[kv->n_free++] = row[i];
        row[i] = -1;
    }
    kv->len_host[seq] = 0;
    /* best effort: the device copy matters only once the sequence is used again, and reserve re-uploads */
    lk_cuda_upload(kv->cu, kv->block_table + (size_t)seq * kv->max_pages_per_seq, row,
                   sizeof(int32_t) * (size_t)kv->max_pages_per_seq, NULL);
    lk_cuda_upload(kv->cu, kv->seq_len + seq, &kv->len_host[seq], 4, NULL);
}

extern "C" loki_status lk_gpu_kv_set_len_host(lk_gpu_kv *kv, int32_t seq, int32_t len, loki_error *err) {
    loki_status st = check_seq(kv, seq, err);
    if (st) return st;
    const int32_t *row = kv->bt_host + (size_t)seq * kv->max_pages_per_seq;
    int32_t have = 0;
    while (have < kv->max_pages_per_seq && row[have] >= 0) have++;
    if (len < 0 || (int64_t)len > (int64_t)have * LK_GPU_PAGE)
        return lk_fail(err, LOKI_ERR_RANGE, "GPU KV cache: length %d of sequence %d exceeds its %d reserved tokens", len,
                       seq, have * LK_GPU_PAGE);
    kv->len_host[seq] = len;
    return LOKI_OK;
}

extern "C" loki_status lk_gpu_kv_set_len(lk_gpu_kv *kv, int32_t seq, int32_t len, loki_error *err) {
    loki_status st = lk_gpu_kv_set_len_host(kv, seq, len, err);
    return st ? st : lk_cuda_upload(kv->cu, kv->seq_len + seq, &len, 4, err);
}

extern "C" void lk_gpu_kv_slots(const lk_gpu_kv *kv, int32_t seq, int32_t pos0, int32_t n, int32_t *slots) {
    const int32_t *row = kv->bt_host + (size_t)seq * kv->max_pages_per_seq;
    for (int32_t i = 0; i < n; i++) {
        int32_t pos = pos0 + i;
        slots[i] = row[pos / LK_GPU_PAGE] * LK_GPU_PAGE + pos % LK_GPU_PAGE;
    }
}

/* Rows of the store: grid (ceil(n / LK_ROT_T), Hkv, ceil(D / 32)), LK_ROT_WARPS
 * warps; a block takes LK_ROT_T rows of KV head h and 32 components j: the
 * rotated key C[j]·k (C rows = PCA axes; lk_rot_tile) in f32, written as
 * bf16 to k_lo or k_hi of the row's slot, and the value's components copied
 * unrotated. k, v (n, Hkv, D); rot (L, Hkv, D, D) or NULL; slots (n).
 * Shared: LK_ROT_T * D floats (the rows' keys). */
__global__ void __launch_bounds__(LK_ROT_WARPS * 32)
    kv_store_kernel(uint16_t *pool, const int32_t *__restrict__ dsplit, int32_t n_pages, int Hkv, int D, int layer,
                    int32_t n, const float *__restrict__ k, const float *__restrict__ v,
                    const int32_t *__restrict__ slots, const float *__restrict__ rot) {
    lk_pdl_wait(); /* launched with programmatic dependent launch: inputs of the kernel before */
    lk_pdl_release();
    extern __shared__ float kin[]; /* (LK_ROT_T, D) */
    const int r0 = blockIdx.x * LK_ROT_T, h = blockIdx.y, rows = min(LK_ROT_T, n - r0);
    const size_t ld = (size_t)Hkv * D;
    const int d = dsplit[layer * Hkv + h];
    /* bf16 component j of row t's key to k_lo / k_hi of its slot */
    auto put_k = [&](int t, int j, float y) {
        const int32_t slot = slots[r0 + t], page = slot / LK_GPU_PAGE, p = slot % LK_GPU_PAGE;
        uint16_t *seg = pool + lk_seg_offset(layer, page, h, n_pages, Hkv, D);
        const size_t koff = j < d ? (size_t)p * d + j : (size_t)LK_GPU_PAGE * d + (size_t)p * (D - d) + (j - d);
        seg[koff] = lk_dev_f32_to_bf16(y);
    };
    const int j0 = blockIdx.z * 32;
    for (int e = threadIdx.x; e < rows * 32; e += blockDim.x) { /* values (and unrotated keys) */
        const int t = e >> 5, j = j0 + (e & 31);
        if (j >= D) continue;
        const int32_t slot = slots[r0 + t], page = slot / LK_GPU_PAGE, p = slot % LK_GPU_PAGE;
        uint16_t *seg = pool + lk_seg_offset(layer, page, h, n_pages, Hkv, D);
        const size_t src = (size_t)(r0 + t) * ld + (size_t)h * D + j;
        seg[(size_t)LK_GPU_PAGE * D + (size_t)p * D + j] = lk_dev_f32_to_bf16(v[src]);
        if (!rot) put_k(t, j, k[src]);
    }
    if (!rot) return; /* uniform over the block: no barrier is skipped by part of it */
    lk_rot_stage(kin, k + (size_t)r0 * ld + (size_t)h * D, ld, rows, D);
    lk_rot_tile(rot + ((size_t)layer * Hkv + h) * D * D, kin, rows, D, j0 + (threadIdx.x >> 5) * LK_ROT_OPW, put_k);
}

extern "C" loki_status lk_gpu_kv_store(lk_gpu_kv *kv, int layer, int32_t n, const float *k, const float *v,
                                       const int32_t *slots, const float *rot, loki_error *err) {
    loki_status st = LOKI_OK;
    if (layer < 0 || layer >= kv->n_layer || n < 0)
        return lk_fail(err, LOKI_ERR_ARG, "GPU KV store: layer %d / rows %d out of range", layer, n);
    if (n == 0) return LOKI_OK;
    const int D = kv->head_dim;
    const dim3 grid((unsigned)((n + LK_ROT_T - 1) / LK_ROT_T), (unsigned)kv->n_head_kv, (unsigned)((D + 31) / 32));
    (void)lk_launch_kernel(kv_store_kernel, grid, LK_ROT_WARPS * 32, LK_ROT_T * D * sizeof(float), kv->cu->stream,
                           true, 0, kv->pool, kv->d_dev, kv->n_pages, kv->n_head_kv, D, layer, n, k, v, slots, rot);
    LK_CUDA_LAUNCHED();
fail:
    return st;
}

static float bf16_to_f32(uint16_t b) {
    uint32_t w = (uint32_t)b << 16;
    float f;
    memcpy(&f, &w, 4);
    return f;
}

extern "C" loki_status lk_gpu_kv_read(lk_gpu_kv *kv, int layer, int32_t seq, int kh, int32_t pos0, int32_t n,
                                      float *k, float *v, loki_error *err) {
    loki_status st = check_seq(kv, seq, err);
    if (st) return st;
    const int D = kv->head_dim, d = kv->d_host[layer * kv->n_head_kv + kh];
    const size_t seg = lk_seg_elems(D);
    uint16_t *buf = (uint16_t *)lk_malloc(seg * 2, err);
    if (!buf) return LOKI_ERR_NOMEM;
    for (int32_t i = 0; i < n; i++) {
        const int32_t pos = pos0 + i, t = pos % LK_GPU_PAGE;
        const int32_t page = kv->bt_host[(size_t)seq * kv->max_pages_per_seq + pos / LK_GPU_PAGE];
        if (page < 0) {
            st = lk_fail(err, LOKI_ERR_RANGE, "GPU KV read: position %d of sequence %d has no page", pos, seq);
            break;
        }
        if (i == 0 || t == 0) /* a new page: fetch its whole segment */
            if ((st = lk_cuda_download(kv->cu, buf, kv->pool + lk_seg_offset(layer, page, kh, kv->n_pages, kv->n_head_kv, D),
                                       seg * 2, err)))
                break;
        for (int j = 0; j < D; j++) {
            size_t off = j < d ? (size_t)t * d + j : (size_t)LK_GPU_PAGE * d + (size_t)t * (D - d) + (j - d);
            k[(size_t)i * D + j] = bf16_to_f32(buf[off]);
            v[(size_t)i * D + j] = bf16_to_f32(buf[(size_t)LK_GPU_PAGE * D + (size_t)t * D + j]);
        }
    }
    free(buf);
    return st;
}

/* Uniform in [-1, 1) from a counter (splitmix64), the CPU benchmark's hash. */
__device__ __forceinline__ float hash_uniform(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (float)((double)(x >> 11) / 4503599627370496.0 - 1.0);
}

/* grid (pages of the sequence, Hkv), 256 threads over the page's P*D
 * key and value elements. sigma (D) on the device. */
__global__ void kv_fill_kernel(uint16_t *pool, const int32_t *__restrict__ dsplit, const int32_t *__restrict__ bt_row,
                               int32_t n_pages, int Hkv, int D, int layer, int32_t n, const float *__restrict__ sigma,
                               uint64_t seed) {
    const int32_t lp = blockIdx.x, h = blockIdx.y, page = bt_row[lp], d = dsplit[layer * Hkv + h];
    uint16_t *seg = pool + lk_seg_offset(layer, page, h, n_pages, Hkv, D);
    for (int e = threadIdx.x; e < LK_GPU_PAGE * D; e += blockDim.x) {
        const int t = e / D, j = e % D;
        const int32_t pos = lp * LK_GPU_PAGE + t;
        if (pos >= n) break;
        uint64_t c = ((((uint64_t)seed * 1000003u + pos) * Hkv + h) * D + j) * 2;
        size_t koff = j < d ? (size_t)t * d + j : (size_t)LK_GPU_PAGE * d + (size_t)t * (D - d) + (j - d);
        seg[koff] = lk_dev_f32_to_bf16(1.7320508f * sigma[j] * hash_uniform(c));
        seg[(size_t)LK_GPU_PAGE * D + (size_t)t * D + j] = lk_dev_f32_to_bf16(hash_uniform(c + 1));
    }
}

extern "C" loki_status lk_gpu_kv_fill_synthetic(lk_gpu_kv *kv, int layer, int32_t seq, int32_t n, const float *sigma,
                                                uint64_t seed, loki_error *err) {
    loki_status st = check_seq(kv, seq, err);
    float *sig = NULL;
    const int32_t pages = (n + LK_GPU_PAGE - 1) / LK_GPU_PAGE;
    if (st) return st;
    if (pages > kv->max_pages_per_seq || (pages && kv->bt_host[(size_t)seq * kv->max_pages_per_seq + pages - 1] < 0))
        return lk_fail(err, LOKI_ERR_RANGE, "GPU KV fill: sequence %d has no pages reserved for %d tokens", seq, n);
    if (n == 0) return LOKI_OK;
    if ((st = lk_cuda_alloc(kv->cu, (void **)&sig, sizeof(float) * kv->head_dim, "synthetic fill", err)) ||
        (st = lk_cuda_upload(kv->cu, sig, sigma, sizeof(float) * kv->head_dim, err)))
        goto fail;
    kv_fill_kernel<<<dim3(pages, kv->n_head_kv), 256, 0, kv->cu->stream>>>(
        kv->pool, kv->d_dev, kv->block_table + (size_t)seq * kv->max_pages_per_seq, kv->n_pages, kv->n_head_kv,
        kv->head_dim, layer, n, sig, seed);
    LK_CUDA_LAUNCHED();
    LK_CUDA_TRY(cudaStreamSynchronize(kv->cu->stream));
fail:
    lk_cuda_dealloc(kv->cu, sig);
    return st;
}
