// sgla_fast_emu.cpp — kernels/cuda/sgla_fast.cu compiled as host C++ against the emulation
// (gdnf_emu.h; built with -DGDNF_HOST_EMU for tests/emu/test_gla_emu.c only).
#include "kernels/cuda/sgla_fast.cu"
