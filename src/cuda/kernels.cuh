/*
 * kernels.cuh - launchers of the attention kernels, shared by the .cu files
 * of the backend (attn.cu drives them; each kernel lives in its own file).
 * All work on the context's stream and only enqueue; launch errors come back
 * as cudaError_t. pdl: launch with programmatic dependent launch (common.cuh;
 * every kernel here waits for its predecessor before touching memory).
 */
#ifndef LK_CUDA_KERNELS_CUH
#define LK_CUDA_KERNELS_CUH

#include "cuda/common.cuh"

extern "C" {
#include "attn/budget.h"
}

/* Most query heads one block of the score and attend kernels serves. */
#define LK_GPU_MAX_NH 8
/* Query heads per block for a group of G: the largest kernel width that
 * divides G (G itself up to 8 for the usual groups 1, 2, 3, 4, 6, 8). */
static inline int lk_pick_nh(int G) {
    const int w[] = {8, 6, 4, 3, 2, 1};
    for (int i = 0; i < 6; i++)
        if (w[i] <= G && G % w[i] == 0) return w[i];
    return 1;
}

/* Most splits of one row in the split-KV attend (partials are sized by it). */
#define LK_GPU_MAX_SPLIT 256

/* ------------------------------------------------------------ attend */

/* Exact attention of query heads over a list of cached tokens, split over
 * the list with partial results merged by lk_launch_reduce. */
struct lk_attend_args {
    lk_kv_view kv;
    const float *q;        /* (B, H, D) */
    int H, G, nh;          /* query heads, heads per KV head, heads per block (1 or G) */
    const int32_t *idx;    /* (B, sel_rows, n_ctx) selected positions (any order); NULL: all tokens */
    const int2 *slots;     /* (B, sel_rows, n_ctx) entries: x = physical slot (page * P + offset), y = the
                              bits of the entry's score (lk_select_args.slots) */
    const int32_t *n_sel;  /* (B, sel_rows): entries of idx; -1 = all seq_len tokens */
    int lsc;               /* 1: slots[].y is the score stage's scale * q[:d] . k[:d] of the entry
                              (per-query-head selections); then only k_hi is read and the exact score
                              is that + scale * q[d:] . k[d:] (q . k split at d: the same sum) */
    int sel_rows, n_ctx;   /* rows per sequence of idx (H or Hkv) and their stride */
    int lowrank;           /* pcaattn: scores from the first d components only */
    float scale;           /* 1/sqrt(D) */
    int n_split, tiles_per_split;
    float *part;           /* (B, H, n_split, D) unnormalised partial outputs */
    float *part_ml;        /* (B, H, n_split, 2) running max and sum of each split */
    float *raw;            /* (B, H, n_ctx) exact scores of list entry j, or NULL */
};
cudaError_t lk_launch_attend(const lk_attend_args *a, int B, int Hkv, cudaStream_t s, bool pdl);
/* Blocks of the attend kernel that a's launch would use resident per SM. */
cudaError_t lk_attend_occupancy(const lk_attend_args *a, int *blocks_per_sm);

/* out (B, H, D) = merge of the n_split partials; ml (B, H, 2) the final max
 * and sum (for H2O's weights), may be NULL. */
cudaError_t lk_launch_reduce(const float *part, const float *part_ml, int n_split, int B, int H, int D, float *out,
                             float *ml, cudaStream_t s, bool pdl);

/* ------------------------------------------------------------- score */

/* Approximate scores scale * q[:dsc] . k[:dsc] of every cached token for
 * query heads h = kvh*G + g (keys read once per KV head):
 *   per-head rows: out[(b*H + h)*n_ctx + pos]      (sum_rows = 0)
 *   summed rows:   out[(b*Hkv + kvh)*n_ctx + pos]  (sum_rows = 1, GQA-shared)
 * and, when rowmax is not NULL, each head's maximum as an orderable key
 * (atomicMax; rowmax (B, H) must be zeroed first). dsc = the head's d
 * (loki) or D (exact-topk on the plain layout, d = D). */
struct lk_score_args {
    lk_kv_view kv;
    const float *q;  /* (B, H, D) */
    int H, G;
    int full;        /* 1: all D components (exact-topk), 0: the first d */
    int dmax;        /* the largest split dim of the layer's heads (sizes the lanes per key) */
    int sum_rows;
    float scale;
    float *out;
    int n_ctx;
    uint32_t *rowmax;
};
cudaError_t lk_launch_score(const lk_score_args *a, int B, int32_t max_len, cudaStream_t s, bool pdl);

/* ------------------------------------------------------------ select */

/* Per selection row (b, r): the budget policy of attn/budget.h on the row's
 * keys; writes the selected positions (in no particular order, with their
 * physical slots) and their count,
 * or n_sel = -1 when the row attends to all of its tokens. */
struct lk_select_args {
    loki_attn_params p;        /* budget fields; pointers unused */
    const int32_t *seq_len;    /* (B) */
    const float *scores;       /* rows of n_ctx floats: row r of sequence b starts at row b*srow_b + r*srow_r */
    int srow_b, srow_r;
    int rows_per_seq, n_ctx;   /* selection rows per sequence (idx, n_sel) */
    int combine_g;             /* > 0: combine per-head rows b*H + r*G .. + G-1 (rows_per_seq = Hkv) */
    int combine_max;           /* gqa_max: by the max of score - rowmax, else by the sum */
    int H;                     /* heads, for combine_g */
    const uint32_t *rowmax;    /* (B, H) for combine_max */
    const uint8_t *evicted;    /* rows indexed like scores (H2O), or NULL */
    int32_t *idx;              /* (B, rows_per_seq, n_ctx) positions, or NULL (the attend needs only slots) */
    int2 *slots;               /* (B, rows_per_seq, n_ctx) entries for the attend gathers: x = the physical
                                  slot, y = the bits of the entry's score (the row's value: meaningful
                                  for plain rows, where the attend stage reuses it); one 8-byte store */
    const int32_t *block_table;/* (B, mpps) */
    int mpps;
    int32_t *n_sel;            /* (B, rows_per_seq) */
};
/* The select state of a row (select.cu keeps it in shared memory). */
struct lk_sel_state {
    uint32_t P;      /* threshold prefix of the keys (key >> sh) */
    int32_t sh;      /* its shift */
    int32_t need;    /* keys equal to the prefix still to take, first by position */
    int32_t mode;    /* 0 selecting, 1 threshold found, 2 all tokens (no list), 3 all candidates */
    int32_t C;       /* candidates (tokens not evicted) until the first digit; then, in
                        mode 1, the keys equal to the prefix (the threshold bucket) */
};
/* sms: the GPU's multiprocessors (sizes the clusters of short rows). */
cudaError_t lk_launch_select(const lk_select_args *a, int B, int32_t max_len, int sms, cudaStream_t s,
                             bool pdl);

/* Orderable key of a float: larger floats give larger keys, NaN the lowest
 * key of any number (1); 0 is below every key (excluded tokens). */
__device__ __forceinline__ uint32_t lk_float_key(float f) {
    uint32_t u = __float_as_uint(f);
    if (f != f) return 1u;
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float lk_key_float(uint32_t k) {
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

/* ------------------------------------------------------------- fused */

/* Loki's decode step in one kernel (loki_fused.cu): score, select, attend
 * and merge of a selection row (b, query head h, or b, KV head when shared)
 * in one cluster; writes out (B, H, D) and, as lk_launch_select does, each
 * row's entries (slots) and count (n_sel; -1 when the row attends to all of
 * its tokens). */
struct lk_fused_args {
    lk_kv_view kv;
    loki_attn_params p;  /* budget fields */
    const float *q;      /* (B, H, D) */
    int H, G;            /* query heads; per KV head (row h reads KV head h / G) */
    float scale;
    int n_ctx;
    int2 *slots;         /* (B, R, n_ctx), R = H, or Hkv when shared */
    int32_t *n_sel;      /* (B, R) */
    float *out;          /* (B, H, D) */
    bool shared;         /* one selection per KV head from the group's summed query (gqa_shared, not gqa_max) */
    /* NULL, or (blocks, LK_FUSED_NPH, 2): each block's %globaltimer (ns) and
     * clock64 when it starts and when it ends each phase (score, select,
     * attend, merge), written by its thread 0 (phase timing) */
    unsigned long long *stamps;
};
#define LK_FUSED_NPH 5 /* stamps a block: start, then the ends of score, select, attend, merge */
#define LK_FUSED_MAXC 16 /* most blocks per selection row (Hopper's non-portable cluster limit) */
/* The launch choice for one shape, kept by the caller between steps (the
 * same shape comes back every step; a miss costs up to six occupancy
 * queries). One plan serves one lk_gpu_attn: the kind of row (shared or
 * not), H, Hkv and G are fixed there, so they are not in the key; nor is
 * the lanes per key (a layer's split dim may vary with --dvar), since every
 * instance has the same register bound and shared memory. Zero-initialised:
 * empty. */
struct lk_fused_plan {
    int B, D;            /* the key: rows' batch, head_dim; B = 0: none yet */
    int32_t max_len;
    int C, L;            /* blocks per row and slice length; C = 0: the separate stages */
    uint32_t attr_set;   /* bit per kernel instance whose attributes are set */
    int force_c;         /* > 0: blocks per row forced (lk_gpu_attn_set_fused_blocks; rounded up to what
                            the rows need, at most 16), whatever the waves */
};
/* Whether the kernel takes this shape at all: head_dim 64 or 128, the
 * layer's largest split dim dmax, rows up to 73728 tokens; any G for
 * per-head selections, shared ones a G dividing the attend's row groups
 * (1, 2, 4, 8, 16). */
bool lk_fused_eligible(int D, int dmax, int G, bool shared, int32_t max_len);
/* Launches the step when the shape is eligible and its clusters fit the
 * GPU well (*taken = true); otherwise enqueues nothing (*taken = false) and
 * the caller runs the separate stages. plan: the caller's cache of the
 * launch choice (lk_fused_plan). */
cudaError_t lk_launch_loki_fused(const lk_fused_args *a, int B, int32_t max_len, int dmax, lk_fused_plan *plan,
                                 cudaStream_t s, bool *taken);

/* --------------------------------------------------------------- h2o */

/* After an H2O (or shared-H2O) step: acc[pos] += softmax weight of every
 * selected token, summed over the unit's g heads; then, when the row did
 * not attend to all candidates, every other candidate is evicted.
 * acc / evicted rows: (b*H + h0)*n_ctx with h0 the unit's first head. */
struct lk_h2o_args {
    const int32_t *seq_len, *idx, *n_sel;
    int sel_rows, n_ctx, H, g;
    const float *raw, *ml; /* (B, H, n_ctx) exact scores by list entry; (B, H, 2) */
    float *acc;
    uint8_t *evicted;
};
cudaError_t lk_launch_h2o_update(const lk_h2o_args *a, int B, cudaStream_t s, bool pdl);

#endif
