// libzstd (Debian 12: libzstd-dev 1.5.4). Only what the .qg reader calls.
#ifndef QUANTA_CZSTD_SHIM_H
#define QUANTA_CZSTD_SHIM_H
#include <zstd.h>

static inline unsigned long long quanta_zstd_content_size_unknown(void) { return ZSTD_CONTENTSIZE_UNKNOWN; }
static inline unsigned long long quanta_zstd_content_size_error(void) { return ZSTD_CONTENTSIZE_ERROR; }
#endif
