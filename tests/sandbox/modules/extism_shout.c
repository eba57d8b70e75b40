#include <stdint.h>
#define IMPORT(n) __attribute__((import_module("extism:host/env"), import_name(n)))
IMPORT("input_length") uint64_t input_length(void);
IMPORT("input_load_u8") uint8_t input_load_u8(uint64_t);
IMPORT("alloc") uint64_t ext_alloc(uint64_t);
IMPORT("store_u8") void store_u8(uint64_t, uint8_t);
IMPORT("load_u8") uint8_t load_u8(uint64_t);
IMPORT("length") uint64_t ext_length(uint64_t);
IMPORT("output_set") void output_set(uint64_t, uint64_t);
IMPORT("config_get") uint64_t config_get(uint64_t);
IMPORT("var_get") uint64_t var_get(uint64_t);
IMPORT("var_set") void var_set(uint64_t, uint64_t);
IMPORT("error_set") void error_set(uint64_t);
IMPORT("log_info") void log_info(uint64_t);

static uint64_t put(const char *s, uint64_t n) { uint64_t o = ext_alloc(n); for (uint64_t i = 0; i < n; i++) store_u8(o + i, s[i]); return o; }
static uint64_t cstr(const char *s) { uint64_t n = 0; while (s[n]) n++; return put(s, n); }

__attribute__((export_name("shout"))) int32_t shout(void) {
    uint64_t n = input_length();
    uint64_t suffix = config_get(cstr("suffix"));
    uint64_t sn = suffix ? ext_length(suffix) : 0;
    uint64_t out = ext_alloc(n + sn);
    for (uint64_t i = 0; i < n; i++) { uint8_t c = input_load_u8(i); if (c >= 'a' && c <= 'z') c -= 32; store_u8(out + i, c); }
    for (uint64_t i = 0; i < sn; i++) store_u8(out + n + i, load_u8(suffix + i));
    log_info(cstr("shouting"));
    output_set(out, n + sn);
    return 0;
}
__attribute__((export_name("fail"))) int32_t fail(void) { error_set(cstr("no thanks")); return 1; }
