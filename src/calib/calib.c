/* calib.c - PLACEHOLDER until the calibration module lands (replaced wholesale). */
#include "calib/pca.h"

void lk_calib_add_keys(lk_calib *c, int basis, int layer, const float *k, int32_t n) {
    (void)c; (void)basis; (void)layer; (void)k; (void)n;
}
