/*
 * How iprelay-limit writes values (limit-format.h): configured values
 * exactly, in the words set reads back; measured ones to three digits;
 * ages; JSON strings.
 */
#include <inttypes.h>
#include <stdio.h>

#include "limit-format.h"
#include "store.h"

/* Configured values print exactly, in a form `set` reads back: the largest
 * of G, M, K (powers of 1024) that divides the value, else plain bytes. */
const char *
format_exact(uint64_t value, char *buf, size_t size)
{
	static const char suffix[] = "GMK";
	unsigned shift, index;

	for (index = 0, shift = 30; index < 3; index++, shift -= 10)
		if (value && value % (1ULL << shift) == 0) {
			snprintf(buf, size, "%" PRIu64 "%c", value >> shift,
			    suffix[index]);
			return buf;
		}
	snprintf(buf, size, "%" PRIu64, value);
	return buf;
}

const char *
format_rate(uint64_t rate_Bps, char *buf, size_t size)
{
	if (rate_Bps == 0) {
		snprintf(buf, size, "unlimited");
		return buf;
	}
	return format_exact(rate_Bps, buf, size);
}

/* A ceiling as set reads it back: none, unlimited or a rate. */
const char *
format_ceil(uint64_t ceil_Bps, char *buf, size_t size)
{
	if (ceil_Bps == CEIL_NONE) {
		snprintf(buf, size, "none");
		return buf;
	}
	if (ceil_Bps == CEIL_UNLIMITED)
		return format_rate(0, buf, size);
	return format_exact(ceil_Bps, buf, size);
}

/* The list column: one value when both directions agree, else up/down. */
const char *
format_ceil_pair(const uint64_t ceil_Bps[2], char *buf, size_t size)
{
	char up[32], down[32];

	if (ceil_Bps[DIR_UP] == ceil_Bps[DIR_DOWN])
		return format_ceil(ceil_Bps[DIR_UP], buf, size);
	snprintf(buf, size, "%s/%s", format_ceil(ceil_Bps[DIR_UP], up,
	    sizeof(up)), format_ceil(ceil_Bps[DIR_DOWN], down, sizeof(down)));
	return buf;
}


/* Measured values are approximate: three significant digits at most, with
 * the same K/M/G powers of 1024 ("63.9K", "1.50M", "512"). */
const char *
format_measured(uint64_t value, char *buf, size_t size)
{
	static const char suffix[] = "KMG";
	double scaled = (double)value;
	int index = -1;

	while (scaled >= 1000.0 && index < 2) {
		scaled /= 1024.0;
		index++;
	}
	if (index < 0)
		snprintf(buf, size, "%" PRIu64, value);
	else if (scaled < 10.0)
		snprintf(buf, size, "%.2f%c", scaled, suffix[index]);
	else if (scaled < 100.0)
		snprintf(buf, size, "%.1f%c", scaled, suffix[index]);
	else
		snprintf(buf, size, "%.0f%c", scaled, suffix[index]);
	return buf;
}

const char *
format_age(uint64_t seconds, char *buf, size_t size)
{
	if (seconds < 60)
		snprintf(buf, size, "%" PRIu64 "s", seconds);
	else if (seconds < 3600)
		snprintf(buf, size, "%" PRIu64 "m%02" PRIu64 "s",
		    seconds / 60, seconds % 60);
	else if (seconds < 86400)
		snprintf(buf, size, "%" PRIu64 "h%02" PRIu64 "m",
		    seconds / 3600, seconds % 3600 / 60);
	else
		snprintf(buf, size, "%" PRIu64 "d%02" PRIu64 "h",
		    seconds / 86400, seconds % 86400 / 3600);
	return buf;
}

void
json_string(const char *text)
{
	const unsigned char *cursor;

	putchar('"');
	for (cursor = (const unsigned char *)text; *cursor; cursor++) {
		if (*cursor == '"' || *cursor == '\\')
			printf("\\%c", *cursor);
		else if (*cursor < 0x20 || *cursor >= 0x7f)
			printf("\\u%04x", *cursor);
		else
			putchar(*cursor);
	}
	putchar('"');
}
