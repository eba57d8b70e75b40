/* A WASI command: upper-cases stdin to stdout; exits with the code given as argv[1] (default 0). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int c;
    while ((c = getchar()) != EOF) putchar(toupper(c));
    return argc > 1 ? atoi(argv[1]) : 0;
}
