/* Shared by the libFuzzer targets and their replay driver (replay.c): the
 * targets are built twice, once with clang -fsanitize=fuzzer for `make
 * fuzz`, once with the ordinary build so `make check` replays the corpora
 * under gcc and under ASan+UBSan. */
#ifndef IPRELAY_FUZZ_H
#define IPRELAY_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant is a finding like a crash: abort so libFuzzer saves
 * the input and the replay fails loudly. */
#define FUZZ_CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, \
		    __LINE__, #cond); \
		abort(); \
	} \
} while (0)

/* The input as a C string: a copy with a NUL after it (bytes after an
 * embedded NUL are what a C caller would never see). */
static inline char *
fuzz_string(const uint8_t *data, size_t size)
{
	char *word = malloc(size + 1);

	if (word == NULL)
		abort();
	for (size_t i = 0; i < size; i++)
		word[i] = (char)data[i];
	word[size] = '\0';
	return word;
}

#endif
