/* TAP output for the unit tests: ok() and diag() lines, and done_testing()
 * printing the plan last and giving main's exit status. */
#ifndef IPRELAY_TAP_H
#define IPRELAY_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int tests_run, tests_failed;

static void
ok(int passed, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
ok(int passed, const char *fmt, ...)
{
	va_list ap;

	tests_run++;
	if (!passed)
		tests_failed++;
	printf("%s %d - ", passed ? "ok" : "not ok", tests_run);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void
diag(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));

static void
diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static int
done_testing(void)
{
	printf("1..%d\n", tests_run);
	return tests_failed ? 1 : 0;
}

#endif
