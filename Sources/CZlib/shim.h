// zlib (Debian 12: zlib1g-dev 1.2.13). Only crc32, for native-graph and output checksums.
#ifndef QUANTA_CZLIB_SHIM_H
#define QUANTA_CZLIB_SHIM_H
#include <zlib.h>
#endif
