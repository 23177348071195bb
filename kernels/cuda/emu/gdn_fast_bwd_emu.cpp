// gdn_fast_bwd_emu.cpp — kernels/cuda/gdn_fast_bwd.cu compiled as host C++ against the emulation
// (gdnf_emu.h; built with -DGDNF_HOST_EMU for tests/emu/test_gdn_emu.c only).
#include "kernels/cuda/gdn_fast_bwd.cu"
