/* libFuzzer target: the store's record decoding.  The first byte picks
 * the kind (limit, bucket, connection; the rest of the byte is ignored so
 * mutations of a seed keep its kind), the rest is the value as it would
 * sit in the LMDB file.  The decoder must say valid or damaged and never
 * read past the value. */
#include <string.h>

#include "fuzz.h"
#include "store.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *value;
	size_t value_size;
	int kind, rc;

	if (size == 0)
		return 0;
	kind = data[0] % 3;
	value_size = size - 1;
	/* An exact-size heap copy, so ASan sees any read past the end. */
	value = malloc(value_size ? value_size : 1);
	if (value == NULL)
		abort();
	memcpy(value, data + 1, value_size);
	rc = store_decode_record(kind, value, value_size);
	FUZZ_CHECK(rc == 0 || rc == STORE_EDAMAGED);
	FUZZ_CHECK(store_decode_record(3, value, value_size) != 0);
	free(value);
	return 0;
}
