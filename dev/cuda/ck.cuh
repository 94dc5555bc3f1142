/*
 * ck.cuh - what the standalone dev/cuda playgrounds (gather_bw.cu, gemv_bw.cu,
 * score_q8.cu) share: CK(call), which ends the program with the file, line,
 * call and CUDA's message when a runtime call fails (the engine's own
 * checks, src/cuda/lk_cuda.h, return statuses instead).
 */
#pragma once

#include <cstdio>
#include <cstdlib>

#define CK(x)                                                                                  \
    do {                                                                                       \
        cudaError_t e_ = (x);                                                                  \
        if (e_ != cudaSuccess) {                                                               \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)
