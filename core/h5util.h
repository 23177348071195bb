// h5util.h — small checked HDF5 helpers shared by the writers (token shards, traces).
#pragma once
#include "core/common.h"
#include <hdf5.h>

// Scalar attribute `name` on obj, stored as file_type, written from mem_type at *v.
void pn_h5_attr_scalar(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, const void *v);
void pn_h5_attr_i64(hid_t obj, const char *name, int64_t v);
void pn_h5_attr_f64(hid_t obj, const char *name, double v);
