#include <cstdio>
int main() { std::puts("lazyroot"); return 0; }
