// cfitsio (Debian 12: libcfitsio-dev 4.2). Its long names are macros Swift cannot call, so the
// calls Quanta uses are wrapped here as static inline functions with the short names inside.
// The headers come from libcfitsio-dev; the library itself is loaded at run time (below).
#ifndef QUANTA_CFITSIO_SHIM_H
#define QUANTA_CFITSIO_SHIM_H
#define QF_STR_(x) #x
#define QF_STR(x) QF_STR_(x)
#include <fitsio.h>
#include <dlfcn.h>

/* libcfitsio is opened on first use, not linked: it pulls in libcurl and ~30 more shared
 * libraries, which cost every run-quantum and quanta start ~7 ms even when no FITS file is
 * touched. Each cfitsio function the wrappers below call is resolved once through dlsym; the
 * macros' real names are redirected to those pointers, so the wrappers read as before. */
static inline void *qf_library(void) {
    static void *handle;
    if (!handle) handle = dlopen("libcfitsio.so." QF_STR(CFITSIO_SONAME), RTLD_NOW | RTLD_LOCAL);
    if (!handle) handle = dlopen("libcfitsio.so", RTLD_NOW | RTLD_LOCAL);
    return handle;
}
#define QF_RESOLVE(name) \
    static inline __typeof__(name) *qf_resolve_##name(void) { \
        static __typeof__(name) *p; \
        if (!p && qf_library()) p = (__typeof__(name) *)dlsym(qf_library(), #name); \
        return p; \
    }
QF_RESOLVE(ffclos)
QF_RESOLVE(ffcmsg)
QF_RESOLVE(ffcrim)
QF_RESOLVE(ffcrtb)
QF_RESOLVE(ffeqtyll)
QF_RESOLVE(ffgcv)
QF_RESOLVE(ffgerr)
QF_RESOLVE(ffghadll)
QF_RESOLVE(ffghdn)
QF_RESOLVE(ffghdt)
QF_RESOLVE(ffgidm)
QF_RESOLVE(ffgiprll)
QF_RESOLVE(ffgisz)
QF_RESOLVE(ffgky)
QF_RESOLVE(ffgkyjj)
QF_RESOLVE(ffgmsg)
QF_RESOLVE(ffgncl)
QF_RESOLVE(ffgnrwll)
QF_RESOLVE(ffgpv)
QF_RESOLVE(ffgtbb)
QF_RESOLVE(ffinit)
QF_RESOLVE(ffmahd)
QF_RESOLVE(ffmrhd)
QF_RESOLVE(ffopentest)
QF_RESOLVE(ffpcks)
QF_RESOLVE(ffpcl)
QF_RESOLVE(ffppr)
QF_RESOLVE(ffthdu)
QF_RESOLVE(ffukyd)
QF_RESOLVE(ffukyj)
QF_RESOLVE(ffukys)
QF_RESOLVE(ffvcks)
/* 1 when the library and every function are there; call before anything else. */
static inline int qf_available(void) {
    return qf_library() != 0
        && qf_resolve_ffclos() != 0
        && qf_resolve_ffcmsg() != 0
        && qf_resolve_ffcrim() != 0
        && qf_resolve_ffcrtb() != 0
        && qf_resolve_ffeqtyll() != 0
        && qf_resolve_ffgcv() != 0
        && qf_resolve_ffgerr() != 0
        && qf_resolve_ffghadll() != 0
        && qf_resolve_ffghdn() != 0
        && qf_resolve_ffghdt() != 0
        && qf_resolve_ffgidm() != 0
        && qf_resolve_ffgiprll() != 0
        && qf_resolve_ffgisz() != 0
        && qf_resolve_ffgky() != 0
        && qf_resolve_ffgkyjj() != 0
        && qf_resolve_ffgmsg() != 0
        && qf_resolve_ffgncl() != 0
        && qf_resolve_ffgnrwll() != 0
        && qf_resolve_ffgpv() != 0
        && qf_resolve_ffgtbb() != 0
        && qf_resolve_ffinit() != 0
        && qf_resolve_ffmahd() != 0
        && qf_resolve_ffmrhd() != 0
        && qf_resolve_ffopentest() != 0
        && qf_resolve_ffpcks() != 0
        && qf_resolve_ffpcl() != 0
        && qf_resolve_ffppr() != 0
        && qf_resolve_ffthdu() != 0
        && qf_resolve_ffukyd() != 0
        && qf_resolve_ffukyj() != 0
        && qf_resolve_ffukys() != 0
        && qf_resolve_ffvcks() != 0
        ;
}
#define ffclos (*qf_resolve_ffclos())
#define ffcmsg (*qf_resolve_ffcmsg())
#define ffcrim (*qf_resolve_ffcrim())
#define ffcrtb (*qf_resolve_ffcrtb())
#define ffeqtyll (*qf_resolve_ffeqtyll())
#define ffgcv (*qf_resolve_ffgcv())
#define ffgerr (*qf_resolve_ffgerr())
#define ffghadll (*qf_resolve_ffghadll())
#define ffghdn (*qf_resolve_ffghdn())
#define ffghdt (*qf_resolve_ffghdt())
#define ffgidm (*qf_resolve_ffgidm())
#define ffgiprll (*qf_resolve_ffgiprll())
#define ffgisz (*qf_resolve_ffgisz())
#define ffgky (*qf_resolve_ffgky())
#define ffgkyjj (*qf_resolve_ffgkyjj())
#define ffgmsg (*qf_resolve_ffgmsg())
#define ffgncl (*qf_resolve_ffgncl())
#define ffgnrwll (*qf_resolve_ffgnrwll())
#define ffgpv (*qf_resolve_ffgpv())
#define ffgtbb (*qf_resolve_ffgtbb())
#define ffinit (*qf_resolve_ffinit())
#define ffmahd (*qf_resolve_ffmahd())
#define ffmrhd (*qf_resolve_ffmrhd())
#define ffopentest (*qf_resolve_ffopentest())
#define ffpcks (*qf_resolve_ffpcks())
#define ffpcl (*qf_resolve_ffpcl())
#define ffppr (*qf_resolve_ffppr())
#define ffthdu (*qf_resolve_ffthdu())
#define ffukyd (*qf_resolve_ffukyd())
#define ffukyj (*qf_resolve_ffukyj())
#define ffukys (*qf_resolve_ffukys())
#define ffvcks (*qf_resolve_ffvcks())

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
static inline int qf_create_int_image(fitsfile *f, long width, long height, int *status) {
    long naxes[2] = { width, height };
    return fits_create_img(f, LONG_IMG, 2, naxes, status);
}
static inline int qf_write_int_rows(fitsfile *f, long width, long firstRow, long rows, int *data, int *status) {
    return fits_write_img(f, TINT, firstRow * width + 1, rows * width, data, status);
}
static inline int qf_create_empty(fitsfile *f, int *status) { return fits_create_img(f, BYTE_IMG, 0, NULL, status); }
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
/* HDU navigation and layout. */
static inline int qf_move_rel(fitsfile *f, int n, int *type, int *status) { return fits_movrel_hdu(f, n, type, status); }
static inline int qf_hdu_number(fitsfile *f) { int n = 0; return fits_get_hdu_num(f, &n); }
static inline int qf_hdu_addr(fitsfile *f, long long *head, long long *data, long long *end, int *status) {
    return fits_get_hduaddrll(f, head, data, end, status);
}
/* Any image HDU: BITPIX, NAXIS and up to 9 axis lengths. */
static inline int qf_image_param(fitsfile *f, int *bitpix, int *naxis, long long *naxes, int *status) {
    return fits_get_img_paramll(f, 9, bitpix, naxis, naxes, status);
}
/* count pixels of any image from first (1-based) as floats, NaN for undefined. */
static inline int qf_read_pixels(fitsfile *f, long long first, long long count, float *out, int *status) {
    float nulval = 0.0f / 0.0f; int anynul = 0;
    return fits_read_img(f, TFLOAT, first, count, &nulval, out, &anynul, status);
}
static inline long qf_count_nan_float(const float *v, long n) {
    long k = 0; for (long i = 0; i < n; i++) k += (v[i] != v[i]); return k;
}
static inline long qf_count_nan_double(const double *v, long n) {
    long k = 0; for (long i = 0; i < n; i++) k += (v[i] != v[i]); return k;
}

/* Binary tables. */
static inline int qf_binary_tbl(void) { return BINARY_TBL; }
static inline int qf_ascii_tbl(void) { return ASCII_TBL; }
static inline int qf_t_double(void) { return TDOUBLE; }
static inline int qf_t_float(void) { return TFLOAT; }
static inline int qf_t_longlong(void) { return TLONGLONG; }
static inline int qf_t_int(void) { return TINT; }
static inline int qf_t_string(void) { return TSTRING; }
static inline int qf_create_table(fitsfile *f, long long rows, int cols, char **names, char **forms, char **units,
                                  const char *extname, int *status) {
    return fits_create_tbl(f, BINARY_TBL, rows, cols, names, forms, units, extname, status);
}
static inline int qf_num_rows(fitsfile *f, long long *rows, int *status) { return fits_get_num_rowsll(f, rows, status); }
static inline int qf_num_cols(fitsfile *f, int *cols, int *status) { return fits_get_num_cols(f, cols, status); }
/* typecode (TDOUBLE, TSTRING, ...; negative for variable-length), repeat count and width in bytes. */
static inline int qf_col_type(fitsfile *f, int col, int *typecode, long long *repeat, long long *width, int *status) {
    return fits_get_eqcoltypell(f, col, typecode, repeat, width, status);
}
static inline int qf_write_col_dbl(fitsfile *f, int col, long long firstRow, long long n, double *v, int *status) {
    return fits_write_col(f, TDOUBLE, col, firstRow, 1, n, v, status);
}
static inline int qf_write_col_lng(fitsfile *f, int col, long long firstRow, long long n, long long *v, int *status) {
    return fits_write_col(f, TLONGLONG, col, firstRow, 1, n, v, status);
}
static inline int qf_write_col_str(fitsfile *f, int col, long long firstRow, long long n, char **v, int *status) {
    return fits_write_col(f, TSTRING, col, firstRow, 1, n, v, status);
}
/* n elements from (firstRow, element 1), NaN for undefined. */
static inline int qf_read_col_dbl(fitsfile *f, int col, long long firstRow, long long n, double *v, int *status) {
    double nulval = 0.0 / 0.0; int anynul = 0;
    return fits_read_col(f, TDOUBLE, col, firstRow, 1, n, &nulval, v, &anynul, status);
}
static inline int qf_read_col_lng(fitsfile *f, int col, long long firstRow, long long n, long long *v, int *status) {
    long long nulval = 0; int anynul = 0;
    return fits_read_col(f, TLONGLONG, col, firstRow, 1, n, &nulval, v, &anynul, status);
}
static inline int qf_read_col_str(fitsfile *f, int col, long long firstRow, long long n, char **v, int *status) {
    int anynul = 0;
    return fits_read_col(f, TSTRING, col, firstRow, 1, n, "", v, &anynul, status);
}
/* Raw bytes of rows (the whole fixed-width part), for reading a table to its end. */
static inline int qf_read_table_bytes(fitsfile *f, long long firstRow, long long nbytes, unsigned char *out, int *status) {
    return fits_read_tblbytes(f, firstRow, 1, nbytes, out, status);
}
static inline int qf_row_width(fitsfile *f, long long *width, int *status) {
    return fits_read_key_lnglng(f, "NAXIS1", width, NULL, status);
}
static inline int qf_end_of_file(void) { return END_OF_FILE; }
static inline void qf_clear_messages(void) { fits_clear_errmsg(); }
#endif
