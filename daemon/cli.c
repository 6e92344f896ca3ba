#include <stdio.h>
int main(void) { fprintf(stderr, "shoebox: not yet\n"); return 1; }
