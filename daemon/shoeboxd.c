#include <stdio.h>
int main(void) { fprintf(stderr, "shoeboxd: not yet\n"); return 1; }
