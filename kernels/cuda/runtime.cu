// runtime.cu — device discovery and the CUDA checked-call macro.
//
// PN_CHECK_CUDA names the call site and the failing call, with a hint for the
// errors a user can act on (out of memory, no device), and exits 3.
#include "pn_cuda.h"
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PN_CHECK_CUDA(call)                                                                          \
    do {                                                                                             \
        cudaError_t err_ = (call);                                                                   \
        if (err_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "postnas: device error at %s:%d: %s failed: %s%s\n", __FILE__, __LINE__, \
                    #call, cudaGetErrorString(err_),                                                 \
                    err_ == cudaErrorMemoryAllocation ? " (hint: lower batch size or context)" : ""); \
            exit(3);                                                                                 \
        }                                                                                            \
    } while (0)

extern "C" int pn_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
    return n;
}

extern "C" void pn_cuda_device_info_get(int dev, pn_cuda_device_info *info) {
    cudaDeviceProp p;
    PN_CHECK_CUDA(cudaGetDeviceProperties(&p, dev));
    memset(info, 0, sizeof(*info));
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->sm_major = p.major;
    info->sm_minor = p.minor;
    info->multiprocessors = p.multiProcessorCount;
    info->l2_bytes = (size_t)p.l2CacheSize;
    info->smem_per_block_optin = p.sharedMemPerBlockOptin;
    PN_CHECK_CUDA(cudaSetDevice(dev));
    PN_CHECK_CUDA(cudaMemGetInfo(&info->free_mem, &info->total_mem));
}
