/* libFuzzer target: a whole configuration file.  The input becomes
 * limits.mdb in a private directory (no live store yet: it is made from
 * the input each time); the store opens it read-only and for writing,
 * lists what it holds and sets a limit.  Any of these must refuse a
 * damaged file with an error code (STORE_ECONFIG and the like): a crash
 * here is the finding damaged-state.t looks for with a handful of
 * hand-made files.  The live store's own file is fuzz-file's; what both
 * do is fuzz-store.h. */
#include "fuzz-store.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_store_file("fuzz-config", STORE_CONFIG_FILE, STORE_FILE,
	    data, size);
}
