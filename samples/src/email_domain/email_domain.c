/* email_domain: a core-ABI UDF that depends on validate_email.  The host validates an address
 * with validate_email first, then calls email_domain(ptr, len) to split it: the result is the
 * byte offset where the domain starts (after the last '@'), or -1 when there is no '@' with
 * something on both sides.  It trusts validate_email for everything else, which is why the
 * registry installs the two together.  Freestanding: no libc, no imports. */
#include <stdint.h>

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

__attribute__((export_name("email_domain"))) int32_t email_domain(const unsigned char *s, uint32_t n) {
    int32_t at = -1;
    for (uint32_t i = 0; i < n; i++) {
        if (s[i] == '@') at = (int32_t)i;
    }
    if (at <= 0 || (uint32_t)at + 1 >= n) return -1;
    return at + 1;
}
