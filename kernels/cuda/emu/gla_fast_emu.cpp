// gla_fast_emu.cpp — kernels/cuda/gla_fast.cu compiled as host C++ against the emulation
// (gdnf_emu.h; built with -DGDNF_HOST_EMU for tests/emu/test_gla_emu.c only).
#include "kernels/cuda/gla_fast.cu"
