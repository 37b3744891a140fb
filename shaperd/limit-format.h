/*
 * How iprelay-limit writes values (limit-format.c), for its commands and
 * for limit-global.c.  Each writes into BUF of SIZE and returns it.
 */
#ifndef IPRELAY_LIMIT_FORMAT_H
#define IPRELAY_LIMIT_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* Configured values, exactly, in a form set reads back: the largest of
 * G, M, K (powers of 1024) that divides the value, else plain bytes. */
const char *
format_exact(uint64_t value, char *buf, size_t size);

/* A rate: "unlimited" for 0, else exact. */
const char *
format_rate(uint64_t rate_Bps, char *buf, size_t size);

/* A ceiling as set reads it back: none, unlimited or a rate. */
const char *
format_ceil(uint64_t ceil_Bps, char *buf, size_t size);

/* The list column: one value when both directions agree, else up/down. */
const char *
format_ceil_pair(const uint64_t ceil_Bps[2], char *buf, size_t size);

/* Measured values: three significant digits at most, with K/M/G powers
 * of 1024 ("63.9K", "1.50M", "512"). */
const char *
format_measured(uint64_t value, char *buf, size_t size);

/* An age in seconds: "42s", "3m07s", "5h02m", "2d03h". */
const char *
format_age(uint64_t seconds, char *buf, size_t size);

/* TEXT as a JSON string on stdout, quotes included. */
void
json_string(const char *text);

#endif
