/* libFuzzer target: the number parsers (parse_rate, parse_bytes,
 * parse_uint, parse_duration_ns).  Beyond not crashing, an accepted word
 * must give a value inside the documented bounds, and a value printed back
 * in decimal must parse to itself. */
#include <inttypes.h>
#include <string.h>

#include "bucket.h"
#include "fuzz.h"
#include "parse.h"

static void
check_rate(const char *word)
{
	uint64_t rate_Bps = UINT64_MAX, again_Bps = UINT64_MAX;
	char printed[32];

	if (parse_rate(word, &rate_Bps) < 0) {
		FUZZ_CHECK(rate_Bps == UINT64_MAX);	/* output untouched */
		return;
	}
	FUZZ_CHECK(rate_Bps <= RATE_MAX);
	snprintf(printed, sizeof(printed), "%" PRIu64, rate_Bps);
	FUZZ_CHECK(parse_rate(printed, &again_Bps) == 0);
	FUZZ_CHECK(again_Bps == rate_Bps);
}

static void
check_bytes(const char *word, uint64_t max)
{
	uint64_t bytes = UINT64_MAX - 1, again = 0;
	char printed[32];

	if (parse_bytes(word, max, &bytes) < 0) {
		FUZZ_CHECK(bytes == UINT64_MAX - 1);
		return;
	}
	FUZZ_CHECK(bytes <= max);
	snprintf(printed, sizeof(printed), "%" PRIu64, bytes);
	FUZZ_CHECK(parse_bytes(printed, max, &again) == 0 && again == bytes);
}

static void
check_uint(const char *word, uint64_t min, uint64_t max)
{
	uint64_t value = 7, again = 0;
	char printed[32];

	if (parse_uint(word, min, max, &value) < 0) {
		FUZZ_CHECK(value == 7);
		return;
	}
	FUZZ_CHECK(value >= min && value <= max);
	/* Only digits are accepted, so the word is the number (leading
	 * zeros aside). */
	FUZZ_CHECK(strspn(word, "0123456789") == strlen(word));
	snprintf(printed, sizeof(printed), "%" PRIu64, value);
	FUZZ_CHECK(parse_uint(printed, min, max, &again) == 0 &&
	    again == value);
}

static void
check_duration(const char *word)
{
	uint64_t duration_ns = 3, again_ns = 0;
	char printed[48];

	if (parse_duration_ns(word, &duration_ns) < 0) {
		FUZZ_CHECK(duration_ns == 3);
		return;
	}
	/* At most 1e9 whole seconds plus under one second. */
	FUZZ_CHECK(duration_ns < (1000ULL * 1000 * 1000 + 1) * NS_PER_SEC);
	snprintf(printed, sizeof(printed), "%" PRIu64 ".%09" PRIu64,
	    duration_ns / (uint64_t)NS_PER_SEC,
	    duration_ns % (uint64_t)NS_PER_SEC);
	FUZZ_CHECK(parse_duration_ns(printed, &again_ns) == 0 &&
	    again_ns == duration_ns);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *word = fuzz_string(data, size);

	check_rate(word);
	check_bytes(word, RATE_MAX);
	check_bytes(word, UINT64_MAX);
	check_bytes(word, 1023);
	check_uint(word, 0, UINT64_MAX);
	check_uint(word, 1, 65535);
	check_duration(word);
	free(word);
	return 0;
}
