// C exports returning unsigned integers: wasm has no sign, so a test may write either reading.
#include <stdint.h>

__attribute__((export_name("hash32"))) uint32_t hash32(uint32_t x) { return x * 2654435761u; }

__attribute__((export_name("flip64"))) uint64_t flip64(uint64_t x) { return ~x; }
