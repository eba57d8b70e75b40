/* A WASI command that probes what the sandbox withholds: files, environment, extra argv. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    FILE *f = fopen("/etc/passwd", "r");
    printf("open /etc/passwd: %s\n", f ? "OPENED" : "denied");
    FILE *g = fopen("secret.txt", "w");
    printf("create secret.txt: %s\n", g ? "CREATED" : "denied");
    const char *home = getenv("HOME");
    printf("HOME: %s\n", home ? home : "(unset)");
    const char *given = getenv("GIVEN");
    printf("GIVEN: %s\n", given ? given : "(unset)");
    printf("argc: %d\n", argc);
    for (int i = 0; i < argc; i++) printf("argv[%d]: %s\n", i, argv[i]);
    return 0;
}
