// cfitsio (Debian 12: libcfitsio-dev 4.2). Its long names are macros Swift cannot call, so the
// calls Quanta uses are wrapped here as static inline functions with the short names inside.
#ifndef QUANTA_CFITSIO_SHIM_H
#define QUANTA_CFITSIO_SHIM_H
#include <fitsio.h>

static inline int qf_open(fitsfile **f, const char *path, int mode, int *status) { return fits_open_file(f, path, mode, status); }
static inline int qf_create(fitsfile **f, const char *path, int *status) { return fits_create_file(f, path, status); }
static inline int qf_close(fitsfile *f, int *status) { return fits_close_file(f, status); }
static inline int qf_num_hdus(fitsfile *f, int *n, int *status) { return fits_get_num_hdus(f, n, status); }
static inline int qf_move(fitsfile *f, int hdu, int *type, int *status) { return fits_movabs_hdu(f, hdu, type, status); }
static inline int qf_hdu_type(fitsfile *f, int *type, int *status) { return fits_get_hdu_type(f, type, status); }
static inline int qf_create_float_image(fitsfile *f, long width, long height, int *status) {
    long naxes[2] = { width, height };
    return fits_create_img(f, FLOAT_IMG, 2, naxes, status);
}
static inline int qf_image_size(fitsfile *f, int *naxis, long *width, long *height, int *status) {
    long naxes[2] = { 0, 0 };
    fits_get_img_dim(f, naxis, status);
    fits_get_img_size(f, 2, naxes, status);
    *width = naxes[0]; *height = naxes[1];
    return *status;
}
/* Rows [firstRow, firstRow + rows) of a 2-D image, 0-based, as floats (NaN for undefined). */
static inline int qf_read_rows(fitsfile *f, long width, long firstRow, long rows, float *out, int *anynul, int *status) {
    float nulval = 0.0f / 0.0f;
    return fits_read_img(f, TFLOAT, firstRow * width + 1, rows * width, &nulval, out, anynul, status);
}
static inline int qf_write_rows(fitsfile *f, long width, long firstRow, long rows, float *data, int *status) {
    return fits_write_img(f, TFLOAT, firstRow * width + 1, rows * width, data, status);
}
static inline int qf_read_key_str(fitsfile *f, const char *key, char *value, int *status) {
    return fits_read_key(f, TSTRING, key, value, NULL, status);
}
static inline int qf_read_key_dbl(fitsfile *f, const char *key, double *value, int *status) {
    return fits_read_key(f, TDOUBLE, key, value, NULL, status);
}
static inline int qf_read_key_lng(fitsfile *f, const char *key, long long *value, int *status) {
    return fits_read_key(f, TLONGLONG, key, value, NULL, status);
}
static inline int qf_update_key_str(fitsfile *f, const char *key, const char *value, const char *comment, int *status) {
    return fits_update_key_str(f, key, value, comment, status);
}
static inline int qf_update_key_dbl(fitsfile *f, const char *key, double value, const char *comment, int *status) {
    return fits_update_key_dbl(f, key, value, -15, comment, status);
}
static inline int qf_update_key_lng(fitsfile *f, const char *key, long long value, const char *comment, int *status) {
    return fits_update_key_lng(f, key, value, comment, status);
}
static inline int qf_write_checksum(fitsfile *f, int *status) { return fits_write_chksum(f, status); }
/* dataok/hduok: 1 verified, 0 absent, -1 wrong. */
static inline int qf_verify_checksum(fitsfile *f, int *dataok, int *hduok, int *status) {
    return fits_verify_chksum(f, dataok, hduok, status);
}
static inline void qf_error_text(int status, char *text) { fits_get_errstatus(status, text); }
static inline int qf_error_message(char *text) { return fits_read_errmsg(text); }
static inline int qf_readonly(void) { return READONLY; }
static inline int qf_readwrite(void) { return READWRITE; }
static inline int qf_image_hdu(void) { return IMAGE_HDU; }
#endif
