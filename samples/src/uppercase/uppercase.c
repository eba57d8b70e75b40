/* uppercase: a WASI command transform.  Copies stdin to stdout, upper-casing ASCII letters.
 * `--lower` lower-cases instead; any other option is a usage error (exit 2). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    int lower = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--lower") == 0) {
            lower = 1;
        } else {
            fprintf(stderr, "uppercase: unknown option %s (use --lower)\n", argv[i]);
            return 2;
        }
    }
    unsigned char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) {
        for (size_t i = 0; i < n; i++) {
            unsigned char c = buf[i];
            if (!lower && c >= 'a' && c <= 'z') buf[i] = (unsigned char)(c - 32);
            if (lower && c >= 'A' && c <= 'Z') buf[i] = (unsigned char)(c + 32);
        }
        if (fwrite(buf, 1, n, stdout) != n) return 1;
    }
    return ferror(stdin) ? 1 : 0;
}
