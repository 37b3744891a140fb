/* libFuzzer target: a whole live state file.  The input becomes
 * iprelay.mdb (the live store) in a private directory; the store opens it
 * read-only and for writing, lists what it holds and sets a limit.  A
 * damaged file must be made again from the configuration (limits.mdb,
 * made on the first open and kept) or refused with an error code: a crash
 * here (SIGBUS or SIGSEGV inside liblmdb, a sanitizer report in the
 * store's own check of the file) is the finding damaged-state.t looks for
 * with a handful of hand-made files.  The configuration's file is
 * fuzz-config's; what both do is fuzz-store.h. */
#include "fuzz-store.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_store_file("fuzz-file", STORE_FILE, NULL, data, size);
}
