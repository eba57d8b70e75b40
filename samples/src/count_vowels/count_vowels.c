/* count_vowels: an Extism-ABI plugin (the classic Extism example) written against the raw
 * `extism:host/env` kernel imports, freestanding.  Output is JSON {"count": N}.  The plugin
 * config key "vowels" replaces the default vowel set "aeiouAEIOU". */
#include <stdint.h>

#define IMPORT(name) __attribute__((import_module("extism:host/env"), import_name(name)))
IMPORT("input_length") uint64_t extism_input_length(void);
IMPORT("input_load_u8") uint32_t extism_input_load_u8(uint64_t offset);
IMPORT("alloc") uint64_t extism_alloc(uint64_t len);
IMPORT("length") uint64_t extism_length(uint64_t offset);
IMPORT("load_u8") uint32_t extism_load_u8(uint64_t offset);
IMPORT("store_u8") void extism_store_u8(uint64_t offset, uint32_t value);
IMPORT("config_get") uint64_t extism_config_get(uint64_t key_offset);
IMPORT("output_set") void extism_output_set(uint64_t offset, uint64_t len);
IMPORT("error_set") void extism_error_set(uint64_t offset);

static uint64_t store(const char *s, uint64_t n) {
    uint64_t off = extism_alloc(n);
    for (uint64_t i = 0; i < n; i++) extism_store_u8(off + i, (unsigned char)s[i]);
    return off;
}

__attribute__((export_name("count_vowels"))) int32_t count_vowels(void) {
    unsigned char vowels[64] = "aeiouAEIOU";
    uint64_t nv = 10;
    uint64_t value = extism_config_get(store("vowels", 6));
    if (value != 0) {
        nv = extism_length(value);
        if (nv > sizeof vowels) {
            static const char msg[] = "config 'vowels' is longer than 64 bytes";
            extism_error_set(store(msg, sizeof msg - 1));
            return 1;
        }
        for (uint64_t i = 0; i < nv; i++) vowels[i] = (unsigned char)extism_load_u8(value + i);
    }
    uint64_t n = extism_input_length(), count = 0;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)extism_input_load_u8(i);
        for (uint64_t j = 0; j < nv; j++) {
            if (c == vowels[j]) {
                count++;
                break;
            }
        }
    }
    char out[32] = "{\"count\": ";
    uint64_t len = 10;
    char digits[20];
    int nd = 0;
    do {
        digits[nd++] = (char)('0' + count % 10);
        count /= 10;
    } while (count);
    while (nd) out[len++] = digits[--nd];
    out[len++] = '}';
    extism_output_set(store(out, len), len);
    return 0;
}
