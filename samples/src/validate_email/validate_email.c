/* validate_email: a core-ABI UDF.  The host writes the address into memory it gets from
 * alloc(len) and calls validate_email(ptr, len); the result is 1 (valid) or 0 (invalid).
 * A pragmatic subset of RFC 5322 addr-spec: dot-atom local part and a dotted domain of
 * LDH labels with an alphabetic TLD.  Freestanding: no libc, no imports. */
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

static int is_atext(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '/': case '=': case '?': case '^': case '_': case '`': case '{': case '|': case '}': case '~':
        return 1;
    default:
        return 0;
    }
}

static int is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_ldh(unsigned char c) { return is_alpha(c) || (c >= '0' && c <= '9') || c == '-'; }

static int valid_local(const unsigned char *s, uint32_t n) {
    if (n == 0 || n > 64 || s[0] == '.' || s[n - 1] == '.') return 0;
    for (uint32_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (s[i + 1] == '.') return 0;
        } else if (!is_atext(s[i])) {
            return 0;
        }
    }
    return 1;
}

static int valid_domain(const unsigned char *s, uint32_t n) {
    if (n == 0 || n > 253) return 0;
    uint32_t label_start = 0, labels = 0, last_alpha = 1;
    for (uint32_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            uint32_t len = i - label_start;
            if (len == 0 || len > 63 || s[label_start] == '-' || s[i - 1] == '-') return 0;
            last_alpha = 1;
            for (uint32_t j = label_start; j < i; j++) last_alpha &= (uint32_t)is_alpha(s[j]);
            labels++;
            label_start = i + 1;
        } else if (!is_ldh(s[i])) {
            return 0;
        }
    }
    return labels >= 2 && last_alpha;
}

__attribute__((export_name("validate_email"))) int32_t validate_email(const unsigned char *s, uint32_t n) {
    if (n > 254) return 0;
    uint32_t at = n;
    for (uint32_t i = 0; i < n; i++) {
        if (s[i] == '@') {
            if (at != n) return 0; /* a second '@' */
            at = i;
        }
    }
    if (at == n) return 0;
    return valid_local(s, at) && valid_domain(s + at + 1, n - at - 1);
}
