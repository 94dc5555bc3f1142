/*
 * context.cu - the device context (one GPU, one stream), device memory,
 * copies, graphs, and the read-bandwidth probe the benchmarks compare with.
 */
#include "cuda/common.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <algorithm>

extern "C" loki_status lk_cuda_fail(loki_error *err, cudaError_t e, const char *what, const char *file, int line) {
    const char *base = strrchr(file, '/');
    return lk_fail(err, e == cudaErrorMemoryAllocation ? LOKI_ERR_NOMEM : LOKI_ERR_UNSUPPORTED,
                   "CUDA: %s failed at %s:%d: %s (%s)", what, base ? base + 1 : file, line, cudaGetErrorString(e),
                   cudaGetErrorName(e));
}

extern "C" bool lk_cuda_built(void) { return true; }

extern "C" bool lk_cuda_usable(void) {
    int n = 0, major = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1 ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return major >= 9;
}

extern "C" loki_status lk_cuda_init(lk_cuda **out, int device, loki_error *err) {
    *out = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess)
        return lk_fail(err, LOKI_ERR_UNSUPPORTED, "no usable CUDA GPU: %s (%s)", cudaGetErrorString(e),
                       cudaGetErrorName(e));
    if (device < 0 || device >= n)
        return lk_fail(err, LOKI_ERR_ARG, "CUDA device %d does not exist (%d found)", device, n);
    lk_cuda *cu = (lk_cuda *)lk_calloc(1, sizeof *cu, err);
    if (!cu) return LOKI_ERR_NOMEM;
    loki_status st = LOKI_OK;
    cu->device = device;
    LK_CUDA_TRY(cudaGetDeviceProperties(&cu->prop, device));
    if (cu->prop.major < 9) {
        st = lk_fail(err, LOKI_ERR_UNSUPPORTED, "CUDA device %d (%s) has compute capability %d.%d; loki's kernels need 9.0 (Hopper) or newer",
                     device, cu->prop.name, cu->prop.major, cu->prop.minor);
        goto fail;
    }
    LK_CUDA_TRY(cudaSetDevice(device));
    LK_CUDA_TRY(cudaStreamCreateWithFlags(&cu->stream, cudaStreamNonBlocking));
    snprintf(cu->desc, sizeof cu->desc, "%s, %d SMs, %.1f GiB, sm_%d%d", cu->prop.name, cu->prop.multiProcessorCount,
             (double)cu->prop.totalGlobalMem / (1 << 30), cu->prop.major, cu->prop.minor);
    *out = cu;
    return LOKI_OK;
fail:
    free(cu);
    return st;
}

extern "C" void lk_cuda_free(lk_cuda *cu) {
    if (!cu) return;
    if (cu->stream) cudaStreamDestroy(cu->stream);
    free(cu);
}

extern "C" const char *lk_cuda_describe(const lk_cuda *cu) { return cu->desc; }
extern "C" int lk_cuda_sm_count(const lk_cuda *cu) { return cu->prop.multiProcessorCount; }

extern "C" loki_status lk_cuda_alloc(lk_cuda *cu, void **p, size_t bytes, const char *what, loki_error *err) {
    (void)cu;
    *p = NULL;
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
    if (e == cudaSuccess) return LOKI_OK;
    cudaGetLastError(); /* clear the sticky-free allocation error */
    *p = NULL;
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    return lk_fail(err, e == cudaErrorMemoryAllocation ? LOKI_ERR_NOMEM : LOKI_ERR_UNSUPPORTED,
                   "GPU allocation of %.2f GiB for %s failed: %s (%.2f GiB free of %.2f GiB)",
                   (double)bytes / (1 << 30), what, cudaGetErrorString(e), (double)fr / (1 << 30),
                   (double)tot / (1 << 30));
}

extern "C" void lk_cuda_dealloc(lk_cuda *cu, void *p) {
    (void)cu;
    if (p) cudaFree(p);
}

/* A copy on the context's stream, complete when it returns. */
static loki_status copy_sync(lk_cuda *cu, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                             loki_error *err) {
    loki_status st = LOKI_OK;
    LK_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, kind, cu->stream));
    LK_CUDA_TRY(cudaStreamSynchronize(cu->stream));
fail:
    return st;
}

extern "C" loki_status lk_cuda_upload(lk_cuda *cu, void *dst, const void *src, size_t bytes, loki_error *err) {
    return copy_sync(cu, dst, src, bytes, cudaMemcpyHostToDevice, err);
}

extern "C" loki_status lk_cuda_download(lk_cuda *cu, void *dst, const void *src, size_t bytes, loki_error *err) {
    return copy_sync(cu, dst, src, bytes, cudaMemcpyDeviceToHost, err);
}

extern "C" loki_status lk_cuda_host_alloc(lk_cuda *cu, void **p, size_t bytes, const char *what, loki_error *err) {
    (void)cu;
    *p = NULL;
    cudaError_t e = cudaMallocHost(p, bytes ? bytes : 1);
    if (e == cudaSuccess) return LOKI_OK;
    cudaGetLastError();
    *p = NULL;
    return lk_fail(err, LOKI_ERR_NOMEM, "page-locked host allocation of %zu bytes for %s failed: %s", bytes, what,
                   cudaGetErrorString(e));
}

extern "C" void lk_cuda_host_free(lk_cuda *cu, void *p) {
    (void)cu;
    if (p) cudaFreeHost(p);
}

extern "C" loki_status lk_cuda_upload_async(lk_cuda *cu, void *dst, const void *src, size_t bytes, loki_error *err) {
    loki_status st = LOKI_OK;
    LK_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cu->stream));
fail:
    return st;
}

extern "C" loki_status lk_cuda_download_async(lk_cuda *cu, void *dst, const void *src, size_t bytes,
                                              loki_error *err) {
    loki_status st = LOKI_OK;
    LK_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cu->stream));
fail:
    return st;
}

extern "C" loki_status lk_cuda_sync(lk_cuda *cu, loki_error *err) {
    loki_status st = LOKI_OK;
    LK_CUDA_TRY(cudaStreamSynchronize(cu->stream));
fail:
    return st;
}

/* One thread waits on the global nanosecond timer. */
__global__ void spin_kernel(unsigned long long ns) {
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do {
        __nanosleep(1000);
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    } while (t - t0 < ns);
}

extern "C" loki_status lk_cuda_spin(lk_cuda *cu, int us, loki_error *err) {
    loki_status st = LOKI_OK;
    spin_kernel<<<1, 1, 0, cu->stream>>>((unsigned long long)LK_MAX(us, 0) * 1000ull);
    LK_CUDA_LAUNCHED();
fail:
    return st;
}

/* ------------------------------------------------------------ graphs */

struct lk_cuda_graph {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
};

extern "C" loki_status lk_cuda_capture_begin(lk_cuda *cu, loki_error *err) {
    loki_status st = LOKI_OK;
    LK_CUDA_TRY(cudaStreamBeginCapture(cu->stream, cudaStreamCaptureModeThreadLocal));
fail:
    return st;
}

extern "C" loki_status lk_cuda_capture_end(lk_cuda *cu, lk_cuda_graph **out, loki_error *err) {
    loki_status st = LOKI_OK;
    *out = NULL;
    lk_cuda_graph *g = (lk_cuda_graph *)lk_calloc(1, sizeof *g, err);
    if (!g) {
        cudaGraph_t tmp;
        if (cudaStreamEndCapture(cu->stream, &tmp) == cudaSuccess) cudaGraphDestroy(tmp);
        return LOKI_ERR_NOMEM;
    }
    LK_CUDA_TRY(cudaStreamEndCapture(cu->stream, &g->graph));
    LK_CUDA_TRY(cudaGraphInstantiate(&g->exec, g->graph, 0));
    *out = g;
    return LOKI_OK;
fail:
    lk_cuda_graph_free(g);
    return st;
}

extern "C" loki_status lk_cuda_graph_run(lk_cuda *cu, lk_cuda_graph *g, int times, float *ms, loki_error *err) {
    loki_status st = LOKI_OK;
    cudaEvent_t e0 = NULL, e1 = NULL;
    LK_CUDA_TRY(cudaEventCreate(&e0));
    LK_CUDA_TRY(cudaEventCreate(&e1));
    LK_CUDA_TRY(cudaEventRecord(e0, cu->stream));
    for (int i = 0; i < times; i++) LK_CUDA_TRY(cudaGraphLaunch(g->exec, cu->stream));
    LK_CUDA_TRY(cudaEventRecord(e1, cu->stream));
    LK_CUDA_TRY(cudaEventSynchronize(e1));
    LK_CUDA_TRY(cudaEventElapsedTime(ms, e0, e1));
fail:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    return st;
}

extern "C" loki_status lk_cuda_capture_end_update(lk_cuda *cu, lk_cuda_graph **gp, loki_error *err) {
    loki_status st = LOKI_OK;
    cudaGraph_t graph = NULL;
    lk_cuda_graph *g = *gp;
    LK_CUDA_TRY(cudaStreamEndCapture(cu->stream, &graph));
    if (g && g->exec) {
        cudaGraphExecUpdateResultInfo info;
        if (cudaGraphExecUpdate(g->exec, graph, &info) == cudaSuccess) {
            cudaGraphDestroy(g->graph);
            g->graph = graph;
            return LOKI_OK;
        }
        cudaGetLastError(); /* a different topology: build it anew */
        cudaGraphExecDestroy(g->exec);
        g->exec = NULL;
    }
    if (!g) {
        if (!(g = (lk_cuda_graph *)lk_calloc(1, sizeof *g, err))) {
            cudaGraphDestroy(graph);
            return LOKI_ERR_NOMEM;
        }
        *gp = g;
    }
    if (g->graph) cudaGraphDestroy(g->graph);
    g->graph = graph;
    graph = NULL;
    LK_CUDA_TRY(cudaGraphInstantiate(&g->exec, g->graph, 0));
    return LOKI_OK;
fail:
    if (graph) cudaGraphDestroy(graph);
    lk_cuda_graph_free(*gp);
    *gp = NULL;
    return st;
}

extern "C" void lk_cuda_capture_abort(lk_cuda *cu) {
    cudaGraph_t graph = NULL;
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(cu->stream, &cs) == cudaSuccess && cs != cudaStreamCaptureStatusNone &&
        cudaStreamEndCapture(cu->stream, &graph) == cudaSuccess && graph)
        cudaGraphDestroy(graph);
    cudaGetLastError(); /* an invalidated capture leaves its error behind */
}

extern "C" loki_status lk_cuda_graph_launch(lk_cuda *cu, lk_cuda_graph *g, loki_error *err) {
    loki_status st = LOKI_OK;
    LK_CUDA_TRY(cudaGraphLaunch(g->exec, cu->stream));
fail:
    return st;
}

extern "C" void lk_cuda_graph_free(lk_cuda_graph *g) {
    if (!g) return;
    if (g->exec) cudaGraphExecDestroy(g->exec);
    if (g->graph) cudaGraphDestroy(g->graph);
    free(g);
}

/* -------------------------------------------------------- timelines */

struct lk_cuda_timeline {
    lk_cuda *cu;
    int cap, n;
    cudaEvent_t *ev; /* (cap) */
    int *tag;        /* (cap) */
};

extern "C" loki_status lk_cuda_timeline_init(lk_cuda *cu, int cap, lk_cuda_timeline **out, loki_error *err) {
    loki_status st = LOKI_OK;
    lk_cuda_timeline *t = (lk_cuda_timeline *)lk_calloc(1, sizeof *t, err);
    *out = NULL;
    if (!t) return LOKI_ERR_NOMEM;
    t->cu = cu;
    t->ev = (cudaEvent_t *)lk_calloc((size_t)cap, sizeof *t->ev, err);
    t->tag = (int *)lk_calloc((size_t)cap, sizeof *t->tag, err);
    if (!t->ev || !t->tag) {
        lk_cuda_timeline_free(t);
        return LOKI_ERR_NOMEM;
    }
    for (; t->cap < cap; t->cap++) LK_CUDA_TRY(cudaEventCreate(&t->ev[t->cap]));
    *out = t;
    return LOKI_OK;
fail:
    lk_cuda_timeline_free(t);
    return st;
}

extern "C" void lk_cuda_timeline_free(lk_cuda_timeline *t) {
    if (!t) return;
    for (int i = 0; i < t->cap; i++) cudaEventDestroy(t->ev[i]);
    free(t->ev);
    free(t->tag);
    free(t);
}

extern "C" loki_status lk_cuda_timeline_mark(lk_cuda_timeline *t, int tag, loki_error *err) {
    loki_status st = LOKI_OK;
    if (t->n >= t->cap) return LOKI_OK;
    LK_CUDA_TRY(cudaEventRecord(t->ev[t->n], t->cu->stream));
    t->tag[t->n++] = tag;
fail:
    return st;
}

extern "C" loki_status lk_cuda_timeline_sum(lk_cuda_timeline *t, double *ms, int n_tags, loki_error *err) {
    loki_status st = LOKI_OK;
    if (t->n > 0) LK_CUDA_TRY(cudaEventSynchronize(t->ev[t->n - 1]));
    for (int i = 1; i < t->n; i++) {
        float e = 0.0f;
        LK_CUDA_TRY(cudaEventElapsedTime(&e, t->ev[i - 1], t->ev[i]));
        if (t->tag[i] >= 0 && t->tag[i] < n_tags) ms[t->tag[i]] += e;
    }
fail:
    t->n = 0;
    return st;
}

/* --------------------------------------------------- read bandwidth */

/* Sum of every word of x (n uint4), grid-stride with four loads in flight
 * per thread; one atomic per block so the reads cannot be optimised away. */
__global__ void read_bw_kernel(const uint4 *__restrict__ x, size_t n, unsigned int *sink) {
    unsigned int acc = 0;
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
    for (; i + 3 * stride < n; i += 4 * stride) {
        uint4 a = __ldcs(x + i), b = __ldcs(x + i + stride), c = __ldcs(x + i + 2 * stride),
              d = __ldcs(x + i + 3 * stride);
        acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
    }
    for (; i < n; i += stride) {
        uint4 a = __ldcs(x + i);
        acc ^= a.x ^ a.y ^ a.z ^ a.w;
    }
    if (acc == 0x9e3779b9u) atomicAdd(sink, 1u); /* practically never: keeps the loads */
}

extern "C" loki_status lk_cuda_read_bw(lk_cuda *cu, size_t bytes, int reps, double *gbs, loki_error *err) {
    loki_status st = LOKI_OK;
    void *buf = NULL;
    unsigned int *sink = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    float *t = (float *)lk_calloc((size_t)std::max(reps, 1), sizeof(float), err);
    size_t n = bytes / 16;
    if (!t) return LOKI_ERR_NOMEM;
    if ((st = lk_cuda_alloc(cu, &buf, n * 16, "bandwidth probe", err))) goto fail;
    if ((st = lk_cuda_alloc(cu, (void **)&sink, sizeof *sink, "bandwidth probe", err))) goto fail;
    LK_CUDA_TRY(cudaMemsetAsync(buf, 0x5a, n * 16, cu->stream));
    LK_CUDA_TRY(cudaEventCreate(&e0));
    LK_CUDA_TRY(cudaEventCreate(&e1));
    for (int r = -2; r < reps; r++) {
        LK_CUDA_TRY(cudaEventRecord(e0, cu->stream));
        read_bw_kernel<<<cu->prop.multiProcessorCount * 8, 512, 0, cu->stream>>>((const uint4 *)buf, n, sink);
        LK_CUDA_LAUNCHED();
        LK_CUDA_TRY(cudaEventRecord(e1, cu->stream));
        LK_CUDA_TRY(cudaEventSynchronize(e1));
        if (r >= 0) LK_CUDA_TRY(cudaEventElapsedTime(&t[r], e0, e1));
    }
    std::sort(t, t + reps);
    *gbs = (double)(n * 16) / (t[reps / 2] * 1e-3) / 1e9;
fail:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    lk_cuda_dealloc(cu, buf);
    lk_cuda_dealloc(cu, sink);
    free(t);
    return st;
}
