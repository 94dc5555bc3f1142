/*
 * lk_cuda.h - the CUDA backend's C interface: a device context, the paged
 * bf16 KV cache, and decode attention for every method (docs/GPU.md).
 *
 * Everything here is callable from C. Built without CUDA (no nvcc at build
 * time), every function that can fail returns LOKI_ERR_UNSUPPORTED with a
 * message saying so (src/cuda/stub.c); on a machine without a usable GPU,
 * lk_cuda_init fails with a message naming the cause. Nothing exits.
 *
 * Device pointers are plain `void *` / typed pointers into GPU memory; every
 * call is ordered on the context's one stream. Shapes use B = sequences in
 * the batch, H = query heads, Hkv = KV heads, D = head_dim, P = page size.
 */
#ifndef LK_CUDA_H
#define LK_CUDA_H

#include "loki.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ context */

typedef struct lk_cuda lk_cuda;

/* True when this build contains the CUDA backend. */
bool lk_cuda_built(void);
/* True when the build has CUDA and GPU 0 exists with compute capability
 * 9.0 or newer (no context is created). */
bool lk_cuda_usable(void);

/* Open GPU `device` (0 = first) with one stream. Fails (LOKI_ERR_UNSUPPORTED)
 * when the build has no CUDA, no driver or no GPU is present, or the GPU is
 * older than the kernels' target; the message names the cause. */
loki_status lk_cuda_init(lk_cuda **out, int device, loki_error *err);
void lk_cuda_free(lk_cuda *cu);

/* "NVIDIA H200, 132 SMs, 139.8 GiB" style description (static storage of cu). */
const char *lk_cuda_describe(const lk_cuda *cu);
int lk_cuda_sm_count(const lk_cuda *cu);

/* Device memory, reported through err (the message names `what` and the
 * size, and the free memory when the allocation does not fit). */
loki_status lk_cuda_alloc(lk_cuda *cu, void **p, size_t bytes, const char *what, loki_error *err);
void lk_cuda_dealloc(lk_cuda *cu, void *p);
/* Copies on the context's stream; they return when the copy is complete. */
loki_status lk_cuda_upload(lk_cuda *cu, void *dst, const void *src, size_t bytes, loki_error *err);
loki_status lk_cuda_download(lk_cuda *cu, void *dst, const void *src, size_t bytes, loki_error *err);
/* Page-locked host memory: copies from and to it run asynchronously and
 * can be captured in a graph (the captured copy reads the memory when the
 * graph runs). Reported through err like lk_cuda_alloc. */
loki_status lk_cuda_host_alloc(lk_cuda *cu, void **p, size_t bytes, const char *what, loki_error *err);
void lk_cuda_host_free(lk_cuda *cu, void *p);
/* Asynchronous copies on the context's stream: host memory must be
 * page-locked (lk_cuda_host_alloc) and must not change until the stream
 * has passed the copy. Errors of the copy surface at the next sync. */
loki_status lk_cuda_upload_async(lk_cuda *cu, void *dst, const void *src, size_t bytes, loki_error *err);
loki_status lk_cuda_download_async(lk_cuda *cu, void *dst, const void *src, size_t bytes, loki_error *err);
/* Wait for the stream; surfaces any error of the kernels launched on it. */
loki_status lk_cuda_sync(lk_cuda *cu, loki_error *err);

/* Enqueue a kernel that keeps the GPU busy for about `us` microseconds, so
 * that the work the host enqueues after it is queued before it starts:
 * events between kernels then time the GPU, not the host's launches. */
loki_status lk_cuda_spin(lk_cuda *cu, int us, loki_error *err);

/* Graphs: capture the work enqueued on the stream between begin and end,
 * then replay it `times` times back to back between two events; *ms is the
 * total elapsed GPU time of the replays. */
typedef struct lk_cuda_graph lk_cuda_graph;
loki_status lk_cuda_capture_begin(lk_cuda *cu, loki_error *err);
loki_status lk_cuda_capture_end(lk_cuda *cu, lk_cuda_graph **g, loki_error *err);
loki_status lk_cuda_graph_run(lk_cuda *cu, lk_cuda_graph *g, int times, float *ms, loki_error *err);
void lk_cuda_graph_free(lk_cuda_graph *g);
/* End a capture into *g for replay: when *g holds an executable graph of the
 * same topology (a decode step at another length), it is updated in place
 * (cudaGraphExecUpdate, far cheaper than a new instantiation); otherwise *g
 * is (re)built. On failure *g is freed and NULL; the stream is no longer
 * capturing either way. */
loki_status lk_cuda_capture_end_update(lk_cuda *cu, lk_cuda_graph **g, loki_error *err);
/* Stop a capture and drop what it recorded (after a failed op). */
void lk_cuda_capture_abort(lk_cuda *cu);
/* Enqueue one replay of g on the context's stream (asynchronous). */
loki_status lk_cuda_graph_launch(lk_cuda *cu, lk_cuda_graph *g, loki_error *err);

/* Timelines: up to `cap` events recorded on the stream with a category tag
 * each; lk_cuda_timeline_sum waits for the last one and adds the time from
 * each event to the next to the next event's category (ms[tag], tags <
 * n_tags), then empties the timeline. Marks past cap are dropped. */
typedef struct lk_cuda_timeline lk_cuda_timeline;
loki_status lk_cuda_timeline_init(lk_cuda *cu, int cap, lk_cuda_timeline **out, loki_error *err);
void lk_cuda_timeline_free(lk_cuda_timeline *t);
loki_status lk_cuda_timeline_mark(lk_cuda_timeline *t, int tag, loki_error *err);
loki_status lk_cuda_timeline_sum(lk_cuda_timeline *t, double *ms, int n_tags, loki_error *err);

/* Read bandwidth of the device memory in GB/s: a kernel that only reads a
 * buffer of `bytes` (several times the L2) and reduces it, median of reps. */
loki_status lk_cuda_read_bw(lk_cuda *cu, size_t bytes, int reps, double *gbs, loki_error *err);

/* --------------------------------------------------------- KV cache */

/* Tokens per page. 64 keeps a page's low part (64 x d bf16, 4 KiB at d = 32)
 * one long contiguous run for the score stage, makes a page one tile of the
 * attend kernel, and wastes at most 63 tokens per sequence (docs/GPU.md). */
#define LK_GPU_PAGE 64

/* Paged bf16 KV cache for up to max_seqs sequences. Each layer has a pool of
 * n_pages pages shared by all sequences through one block table per
 * sequence (a logical page of a sequence maps to the same physical page in
 * every layer, as vLLM does). Inside a page, for each KV head h with split
 * dim d = d[layer][h] (a multiple of 8):
 *     k_lo (P, d)     first d components of the page's keys (score stage)
 *     k_hi (P, D-d)   the remaining components
 *     v    (P, D)     values, never rotated
 * so a (layer, page, head) segment is P*2*D bf16 whatever d is. */
typedef struct lk_gpu_kv {
    lk_cuda *cu;                 /* borrowed */
    int32_t n_layer, n_head_kv, head_dim, n_pages, max_seqs, max_pages_per_seq;
    int32_t *d_host;             /* (L, Hkv) split dims */
    int32_t *d_dev;              /* (L, Hkv) on the device */
    uint16_t *pool;              /* bf16 (L, n_pages, Hkv, P*2*D) */
    int32_t *block_table;        /* device (max_seqs, max_pages_per_seq), -1 = none */
    int32_t *bt_host;            /* host mirror of block_table */
    int32_t *seq_len;            /* device (max_seqs) tokens visible to attention */
    int32_t *len_host;           /* host mirror of seq_len */
    int32_t *free_pages;         /* host stack of free physical pages */
    int32_t n_free;
} lk_gpu_kv;

/* Allocate the cache. d (L*Hkv) gives each head's split dim (NULL: D, the
 * plain layout); every d must be a multiple of 8 in [8, D], D a multiple of
 * 8 up to 256. A cache larger than the free GPU memory is LOKI_ERR_NOMEM
 * with a message giving both sizes. */
loki_status lk_gpu_kv_init(lk_cuda *cu, lk_gpu_kv **out, int32_t n_layer, int32_t n_head_kv, int32_t head_dim,
                           const int32_t *d, int32_t n_pages, int32_t max_seqs, int32_t max_pages_per_seq,
                           loki_error *err);
void lk_gpu_kv_free(lk_gpu_kv *kv);

/* Give sequence `seq` pages for at least n_tokens tokens (pages it already
 * has are kept) and upload its block table row. LOKI_ERR_RANGE when the pool
 * or the sequence's table is full. Does not change its length. */
loki_status lk_gpu_kv_reserve(lk_gpu_kv *kv, int32_t seq, int32_t n_tokens, loki_error *err);
/* Return all pages of `seq` to the pool; its length becomes 0. */
void lk_gpu_kv_release(lk_gpu_kv *kv, int32_t seq);
/* Set the tokens of `seq` that attention sees (<= its reserved pages * P). */
loki_status lk_gpu_kv_set_len(lk_gpu_kv *kv, int32_t seq, int32_t len, loki_error *err);

/* As lk_gpu_kv_set_len for the host mirror only (len_host): the caller
 * copies len_host (max_seqs) to the device's seq_len itself, e.g. with
 * lk_cuda_upload_async from page-locked memory inside a captured step. */
loki_status lk_gpu_kv_set_len_host(lk_gpu_kv *kv, int32_t seq, int32_t len, loki_error *err);

/* Physical slots (page * P + offset) of positions pos0 .. pos0+n-1 of `seq`
 * (reserved) into slots (n, host). */
void lk_gpu_kv_slots(const lk_gpu_kv *kv, int32_t seq, int32_t pos0, int32_t n, int32_t *slots);

/* Store n rows into a layer: k, v (n, Hkv, D) f32 on the device, row i at
 * physical slot slots[i] (device, n). Keys are rotated first when rot is not
 * NULL: k' = C k with C = rot (L, Hkv, D, D) f32 on the device, rows the PCA
 * axes (the CPU's convention), then rounded to bf16 and split at d. */
loki_status lk_gpu_kv_store(lk_gpu_kv *kv, int layer, int32_t n, const float *k, const float *v,
                            const int32_t *slots, const float *rot, loki_error *err);

/* A decode step's q, k, v from the products to the cache, fused
 * (kv_rope_store.cu): RoPE (rope_dim, inv_freq (rope_dim/2) on the device,
 * neox pairs (i, i + rope_dim/2) or else (2i, 2i+1)) at pos[i] (device, n) on
 * q (n, n_head, D) and k (n, Hkv, D); then, when rot (L, Hkv, D, D) is not
 * NULL, both rotated into the PCA basis of their KV head; q_out (n, n_head,
 * D) = q_scale * q (another buffer than q); k and v stored as
 * lk_gpu_kv_store does at slots (device, n). q, k, v are not changed.
 * LOKI_ERR_ARG for shapes lk_gpu_kv_rope_store_fits refuses and n > 65535
 * (decode rows: one grid row each). */
loki_status lk_gpu_kv_rope_store(lk_gpu_kv *kv, int layer, int32_t n, int n_head, const float *q, float *q_out,
                                 const float *k, const float *v, const int32_t *slots, const int32_t *pos,
                                 const float *inv_freq, int rope_dim, int neox, const float *rot, float q_scale,
                                 loki_error *err);
/* Whether lk_gpu_kv_rope_store takes this shape (its shared memory: the
 * group's G + 1 vectors and, rotating, 32 rows of C, within 48 KiB). */
bool lk_gpu_kv_rope_store_fits(int n_head, int n_head_kv, int head_dim, int rope_dim, bool rot);

/* Read back positions pos0 .. pos0+n-1 of (layer, seq, KV head kh) as f32:
 * k (n, D) in the stored (rotated) basis, v (n, D); host buffers. For tests. */
loki_status lk_gpu_kv_read(lk_gpu_kv *kv, int layer, int32_t seq, int kh, int32_t pos0, int32_t n, float *k,
                           float *v, loki_error *err);

/* Fill positions 0 .. n-1 of `seq` (reserved) in every KV head of a layer
 * with synthetic data in the stored basis: key component j uniform with
 * standard deviation sigma[j] (host, D), values uniform in [-1, 1), from a
 * counter hash of (seed, seq, position, head, component); sets nothing else.
 * Used by the benchmark to build caches of any size without the host. */
loki_status lk_gpu_kv_fill_synthetic(lk_gpu_kv *kv, int layer, int32_t seq, int32_t n, const float *sigma,
                                     uint64_t seed, loki_error *err);

/* ------------------------------------------------------- attention */

typedef struct lk_gpu_attn lk_gpu_attn;

/* Split dims for the GPU cache: the CPU's lk_attn_split_dim (D for methods
 * without a PCA) rounded up to a multiple of 8, for (L, Hkv) heads into d. */
void lk_gpu_split_dims(const loki_attn_params *p, int32_t n_layer, int32_t n_head_kv, int32_t head_dim,
                       int32_t *d);

/* Decode attention state for a cache and a method. p has passed
 * loki_attn_validate (or equivalent checks); methods: dense, exact-topk,
 * loki, pcaattn, h2o, with k_min, dense_below, sinks, recent, gqa_shared,
 * gqa_max, k_fixed. evict_kf is not supported on the GPU
 * (LOKI_ERR_UNSUPPORTED). n_head must be a multiple of kv->n_head_kv with
 * at most 16 query heads per KV head; head_dim 64, 128 or 256. The cache's
 * split dims must be the method's (lk_gpu_split_dims; LOKI_ERR_ARG
 * otherwise): dense, exact-topk and h2o need the plain layout (d = D). Scratch holds rows of up to
 * max_batch sequences of kv->max_pages_per_seq * P tokens. */
loki_status lk_gpu_attn_init(lk_gpu_attn **out, lk_gpu_kv *kv, int32_t n_head, int32_t max_batch,
                             const loki_attn_params *p, loki_error *err);
void lk_gpu_attn_free(lk_gpu_attn *a);

/* Forget H2O's accumulated attention and evictions. */
loki_status lk_gpu_attn_reset(lk_gpu_attn *a, loki_error *err);
/* The same for one sequence (every layer), enqueued on the stream; nothing
 * to do for other methods. */
loki_status lk_gpu_attn_reset_seq(lk_gpu_attn *a, int32_t seq, loki_error *err);

/* One decode step of a layer for sequences 0..B-1 of the cache: q (B, H, D)
 * f32 on the device, already rotated into the PCA basis for loki/pcaattn;
 * out (B, H, D) f32 on the device. Sequence b attends over its seq_len[b]
 * cached tokens (its current token already stored). Asynchronous: errors
 * of the kernels surface at the next lk_cuda_sync. Scores are q.k/sqrt(D).
 * Every sequence needs at least one cached token (LOKI_ERR_ARG). Selections
 * follow attn/budget.h as on the CPU; ties at the threshold go to the lower
 * position. */
loki_status lk_gpu_attn_decode(lk_gpu_attn *a, int layer, int32_t B, const float *q, float *out, loki_error *err);

/* As lk_gpu_attn_decode for sequences seq0 .. seq0+B-1 of the cache (batch
 * row b of q and out is sequence seq0 + b); seq0 + B <= max_batch. */
loki_status lk_gpu_attn_decode_seqs(lk_gpu_attn *a, int layer, int32_t seq0, int32_t B, const float *q, float *out,
                                    loki_error *err);

/* Batch rows lk_gpu_attn_prompt runs together: as many as about
 * LK_GPU_PROMPT_BYTES of scratch hold (scores, selections, split partials
 * of a row at the context's length), at least one and at most
 * LK_GPU_PROMPT_ROWS (methods other than dense and H2O; each launch of the
 * decode stages has a fixed cost, so fewer, wider batches are faster). */
#define LK_GPU_PROMPT_ROWS 256
#define LK_GPU_PROMPT_BYTES ((size_t)512 << 20)

/* Attention of n prompt rows of sequence `seq` with the method (its keys
 * and values already stored): row i, at position pos0 + i, attends over the
 * first pos0 + i + 1 tokens and selects exactly as a decode step at that
 * length would (attn/budget.h, with k_fixed when set: the paper's
 * prefill-mask evaluation), so a prompt gives what the CPU's prompt blocks
 * give. The rows run as decode batches (LK_GPU_PROMPT_ROWS) over the
 * sequence's block table; H2O one row at a time, in order, on the
 * sequence's accumulators. q (n, H, D) on the device as for decode (rotated,
 * scaled for 1/sqrt(D)); out (n, H, D). pos0 + n <= the sequence's length
 * (LOKI_ERR_ARG). Synchronises once (the row lengths go up). */
loki_status lk_gpu_attn_prompt(lk_gpu_attn *a, int layer, int32_t seq, int32_t pos0, int32_t n, const float *q,
                               float *out, loki_error *err);
/* Every row selects k tokens (0: the budget of the method's kf); the
 * method's k_fixed. perplexity --mode prefill sets k = floor(kf * window). */
void lk_gpu_attn_set_k_fixed(lk_gpu_attn *a, int32_t k);

/* Per-stage timing: when on, lk_gpu_attn_decode records events around its
 * stages; lk_gpu_attn_stage_ms waits for the last step and gives the
 * milliseconds of score, select and attend (attend includes the split
 * reduction and H2O's accumulation). */
void lk_gpu_attn_set_timing(lk_gpu_attn *a, bool on);
/* Force n_split splits per row of the split-KV attend (as flash-attention's
 * num_splits; clamped to the row's tiles and LK_GPU_MAX_SPLIT); 0 restores
 * the automatic choice. For benchmarks and tuning. */
void lk_gpu_attn_set_splits(lk_gpu_attn *a, int n_split);
/* Programmatic dependent launch between the kernels of a step (on by
 * default on sm_90 and later: each kernel's launch overlaps the tail of the
 * one before it). Off: plain stream order. For benchmarks. */
void lk_gpu_attn_set_pdl(lk_gpu_attn *a, bool on);
/* Which Loki steps run score, select, attend and merge as one kernel
 * (loki_fused.cu): head_dim 64 or 128, rows up to 73728 tokens, when its
 * clusters fit the GPU in one wave or the batch makes four waves or more;
 * LOKI_CUDA_FUSED_MHA (the default) per-head selections with one query head
 * per KV head, LOKI_CUDA_FUSED_PER_HEAD per-head selections of grouped
 * heads too, LOKI_CUDA_FUSED_ALL also the summed shared selection (groups
 * of 1, 2, 4, 8 or 16 heads; not gqa_max), LOKI_CUDA_FUSED_OFF never.
 * Other shapes and methods take the separate stages. For tests and
 * benchmarks. */
void lk_gpu_attn_set_fused(lk_gpu_attn *a, loki_cuda_fused mode);
/* Force the fused kernel's blocks per selection row (a power of two, raised
 * to what the longest row needs, at most 16), whatever the waves its
 * clusters make; 0 restores the automatic choice. For benchmarks. */
void lk_gpu_attn_set_fused_blocks(lk_gpu_attn *a, int blocks);
/* Launch shapes from length buckets, for replaying captured steps: when on,
 * lk_gpu_attn_decode sizes its grids and split counts by the buckets of
 * lk_gpu_attn_step_key instead of the exact host lengths, so every step
 * with the same key launches the same kernels with the same arguments (the
 * kernels read the true lengths from the device's seq_len). Off by default. */
void lk_gpu_attn_set_bucketed(lk_gpu_attn *a, bool on);
/* The key of a decode step of sequences seq0..seq0+B-1 at the cache's current host
 * lengths: B, the bucket of the longest sequence and the bucket of the
 * longest token list the attend stage visits (buckets are at most 1/8
 * larger than what they hold). Steps with equal keys launch identical work
 * when bucketed. 0 for sequences out of range. */
uint64_t lk_gpu_attn_step_key(const lk_gpu_attn *a, int32_t seq0, int32_t B);
/* Splits per row the last decode step used; 0 when it ran as the fused
 * Loki kernel (lk_gpu_attn_set_fused). */
int lk_gpu_attn_splits(const lk_gpu_attn *a);
loki_status lk_gpu_attn_stage_ms(lk_gpu_attn *a, float ms[3], loki_error *err);
/* Where the fused Loki kernel's time goes: with timing on, each block of a
 * fused step stamps %globaltimer and clock64 at its start and at the end of
 * each phase. us[p] / kcycles[p]: the mean over blocks of phase p's time
 * (0 score: the slice's first-d scores into shared memory; 1 select: the
 * radix passes over the cluster and the selected offsets; 2 attend: the
 * entries written, the selected tokens' exact scores, softmax and values,
 * the block's partial; 3 merge: the partials per head and each block's share of the
 * merge); max_us: each phase's longest block (against us, the imbalance
 * the next barrier waits for); span_us: the first block's start to the
 * last block's end. Waits
 * for the step. LOKI_ERR_ARG when the last decode step did not run the
 * fused kernel with timing on; LOKI_ERR_UNSUPPORTED (naming the block) when
 * a stamp is missing or out of order. For benchmarks and tuning. */
typedef struct lk_fused_phases {
    double us[4], kcycles[4], max_us[4], span_us;
    int64_t blocks;
} lk_fused_phases;
loki_status lk_gpu_attn_fused_phases(lk_gpu_attn *a, lk_fused_phases *ph, loki_error *err);

/* The selection of the last decode step for (b, query head h) (per KV head
 * with a shared selection, where every head of a group gives the same set):
 * positions (host, up to seq_len[b]) sorted ascending (the device list is
 * in no particular order), their count in *n.
 * A row that attended to every candidate gives all candidates: 0..seq_len-1,
 * or for H2O the tokens not evicted. For tests. */
loki_status lk_gpu_attn_selection(lk_gpu_attn *a, int32_t b, int32_t h, int32_t *pos, int32_t *n,
                                  loki_error *err);

#ifdef __cplusplus
}
#endif
#endif
