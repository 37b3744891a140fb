/* Replays files through a fuzz target without libFuzzer, so the corpora
 * and every saved crash run under gcc and the ASan build of `make check`.
 * usage: fuzz-TARGET FILE|DIR...  (a DIR means every file in it). */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int
replay_file(const char *path)
{
	FILE *file;
	uint8_t *data = NULL;
	size_t size = 0, capacity = 0, got;

	if ((file = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "replay: fatal: unable to open %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	for (;;) {
		if (size == capacity) {
			capacity = capacity ? capacity * 2 : 4096;
			if ((data = realloc(data, capacity)) == NULL)
				abort();
		}
		got = fread(data + size, 1, capacity - size, file);
		size += got;
		if (got == 0)
			break;
	}
	if (ferror(file)) {
		fprintf(stderr, "replay: fatal: unable to read %s: %s\n", path,
		    strerror(errno));
		fclose(file);
		free(data);
		return -1;
	}
	fclose(file);
	LLVMFuzzerTestOneInput(data, size);
	free(data);
	return 1;
}

static int
replay_dir(const char *path)
{
	struct dirent **entries;
	char child[4096];
	int count, index, done = 0, rc;

	if ((count = scandir(path, &entries, NULL, alphasort)) < 0) {
		fprintf(stderr, "replay: fatal: unable to list %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	for (index = 0; index < count; index++) {
		if (entries[index]->d_name[0] != '.' && done >= 0) {
			snprintf(child, sizeof(child), "%s/%s", path,
			    entries[index]->d_name);
			rc = replay_file(child);
			done = rc < 0 ? -1 : done + rc;
		}
		free(entries[index]);
	}
	free(entries);
	return done;
}

int
main(int argc, char **argv)
{
	struct stat st;
	int arg, rc, total = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 100;
	}
	for (arg = 1; arg < argc; arg++) {
		if (stat(argv[arg], &st) < 0) {
			fprintf(stderr, "replay: fatal: unable to stat %s: %s\n",
			    argv[arg], strerror(errno));
			return 111;
		}
		rc = S_ISDIR(st.st_mode) ? replay_dir(argv[arg]) :
		    replay_file(argv[arg]);
		if (rc < 0)
			return 111;
		total += rc;
	}
	printf("replayed %d inputs\n", total);
	return 0;
}
