// pn_cuda.h — extern "C" entry points of the CUDA backend (kernels/cuda/*.cu).
//
// Host C code includes only this header; CUDA C++ stays inside kernels/cuda/.
#pragma once
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char name[256];
    int sm_major, sm_minor;
    int multiprocessors;
    size_t total_mem, free_mem;
    size_t l2_bytes;
    size_t smem_per_block_optin;
} pn_cuda_device_info;

// Number of visible CUDA devices (0 when there is no driver or device; never dies).
int pn_cuda_device_count(void);
// Fills info for device `dev`; dies with exit 3 on a CUDA error.
void pn_cuda_device_info_get(int dev, pn_cuda_device_info *info);

#ifdef __cplusplus
}
#endif
