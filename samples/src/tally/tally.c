/* tally: a core-ABI UDF built as a WASI reactor with wasi-libc (clang -mexec-model=reactor).
 *
 * A constructor sets up the step table, so the host must call _initialize once per instance
 * before any export (a reactor's contract); without it every call traps.  Counters live in the
 * host's key-value store behind the `keys` permission (ferrite:keys get/set); values are decimal
 * text, parsed with wasi-libc's strtoll.  Formatting is done here rather than with snprintf, whose
 * stdio machinery would import WASI file descriptors (fd_write, fd_seek, fd_close), which the core
 * ABI does not provide without a permission.
 *
 * Exports:
 *   alloc(len) -> ptr                        bytes for the key
 *   add(key_ptr, key_len) -> i64             counter + 1, stored back (1 when absent);
 *                                            -1 when the stored value is not a number
 *   add_ten(key_ptr, key_len) -> i64         the same with a step of 10 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

__attribute__((import_module("ferrite:keys"), import_name("get")))
int32_t keys_get(const char *key, int32_t key_len, char *out, int32_t out_cap);
__attribute__((import_module("ferrite:keys"), import_name("set")))
int32_t keys_set(const char *key, int32_t key_len, const char *value, int32_t value_len);

static int64_t steps[2];
static int ready;

__attribute__((constructor)) static void setup(void) {
    steps[0] = 1;
    steps[1] = 10;
    ready = 1;
}

__attribute__((export_name("alloc"))) void *alloc(int32_t len) {
    return malloc(len > 0 ? (size_t)len : 1);
}

/* Decimal text of v into out (at least 21 bytes); returns its length. */
static int format_i64(int64_t v, char *out) {
    char digits[21];
    int n = 0, len = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) out[len++] = '-';
    while (n) out[len++] = digits[--n];
    return len;
}

static int64_t bump(const char *key, int32_t key_len, int64_t step) {
    char value[32];
    int64_t current = 0;
    int32_t n = keys_get(key, key_len, value, (int32_t)sizeof value - 1);
    if (n >= (int32_t)sizeof value) return -1;
    if (n >= 0) {
        char *end = NULL;
        value[n] = '\0';
        current = strtoll(value, &end, 10);
        if (n == 0 || *end != '\0') return -1;
    }
    current += step;
    int len = format_i64(current, value);
    keys_set(key, key_len, value, len);
    return current;
}

__attribute__((export_name("add"))) int64_t add(const char *key, int32_t key_len) {
    if (!ready) __builtin_trap();
    return bump(key, key_len, steps[0]);
}

__attribute__((export_name("add_ten"))) int64_t add_ten(const char *key, int32_t key_len) {
    if (!ready) __builtin_trap();
    return bump(key, key_len, steps[1]);
}
