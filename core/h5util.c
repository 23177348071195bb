// h5util.c — see h5util.h. Every HDF5 call is checked (PN_CHECK_H5).
#include "core/h5util.h"

void pn_h5_attr_scalar(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, const void *v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    PN_CHECK_H5(sp);
    hid_t a = H5Acreate2(obj, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT);
    PN_CHECK_H5(a);
    PN_CHECK_H5(H5Awrite(a, mem_type, v));
    PN_CHECK_H5(H5Aclose(a));
    PN_CHECK_H5(H5Sclose(sp));
}

void pn_h5_attr_i64(hid_t obj, const char *name, int64_t v) {
    pn_h5_attr_scalar(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

void pn_h5_attr_f64(hid_t obj, const char *name, double v) {
    pn_h5_attr_scalar(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}
