/* visit_counter: a core-ABI plugin that needs the `keys` permission.  It reads a counter
 * from the host's key-value store through the permission-gated import `ferrite:keys/get`
 * and returns the next value.
 *
 * Host import contract (ferrite:keys):
 *   get(key_ptr: i32, key_len: i32, out_ptr: i32, out_cap: i32) -> i32
 *     copies the value into out (at most out_cap bytes) and returns its full length,
 *     or -1 when the key is absent.
 * Export: next_visit(key_ptr: i32, key_len: i32) -> i64
 *   0 for an empty key (no host call), else the stored decimal value + 1 (1 when absent),
 *   -1 when the stored value is not a decimal number. */
#include <stdint.h>

__attribute__((import_module("ferrite:keys"), import_name("get")))
int32_t ferrite_keys_get(const unsigned char *key, int32_t key_len, unsigned char *out, int32_t out_cap);

extern unsigned char __heap_base;
static uintptr_t heap_top = 0;

__attribute__((export_name("alloc"))) uint32_t alloc(uint32_t len) {
    if (heap_top == 0) heap_top = (uintptr_t)&__heap_base;
    uintptr_t p = (heap_top + 7u) & ~(uintptr_t)7u;
    uintptr_t end = p + len;
    uintptr_t have = __builtin_wasm_memory_size(0) * 65536u;
    if (end > have) {
        if (__builtin_wasm_memory_grow(0, (end - have + 65535u) / 65536u) == (uintptr_t)-1) return 0;
    }
    heap_top = end;
    return (uint32_t)p;
}

__attribute__((export_name("next_visit"))) int64_t next_visit(const unsigned char *key, int32_t key_len) {
    if (key_len <= 0) return 0;
    unsigned char value[20];
    int32_t n = ferrite_keys_get(key, key_len, value, (int32_t)sizeof value);
    if (n < 0) return 1;
    if (n == 0 || n > (int32_t)sizeof value) return -1;
    int64_t v = 0;
    for (int32_t i = 0; i < n; i++) {
        if (value[i] < '0' || value[i] > '9') return -1;
        v = v * 10 + (value[i] - '0');
    }
    return v + 1;
}
