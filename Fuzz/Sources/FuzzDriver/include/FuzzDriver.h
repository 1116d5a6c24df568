#include <stddef.h>
#include <stdint.h>

// libFuzzer's own entry (compiler-rt, linked by -sanitize=fuzzer). SwiftPM links an executable
// with main = <target>_main, so libFuzzer's main is never used: each target's @main calls this.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

static inline int quanta_fuzz_main(int argc, char **argv, int (*callback)(const uint8_t *data, size_t size)) {
    return LLVMFuzzerRunDriver(&argc, &argv, callback);
}
