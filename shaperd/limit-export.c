/*
 * iprelay-limit export and import: the whole configuration as JSON, one
 * limit an line, to back it up, review it or move it to another host, and
 * back.  Every field of struct limit_cfg is in the export (FIELDS below;
 * a field added to the struct fails the build until it is added there),
 * and an import is all or nothing: the file is parsed and every limit
 * checked first, then the configuration is replaced in one synced commit
 * (store_config_replace).  A bad file is named with the line and field.
 * The commands export and import are at the end.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iprelay-limit.h"
#include "limit-export.h"
#include "log.h"
#include "parse.h"
#include "store.h"

#define EXPORT_FORMAT	"iprelay-limits 1"
#define IMPORT_MAX_B	(64U * 1024 * 1024)

enum field_kind { FIELD_NUM, FIELD_BOOL, FIELD_OFFLINE };

static const struct field {
	const char *name;
	size_t offset, size;
	enum field_kind kind;
} fields[] = {
#define F(name, member, kind) { name, offsetof(struct limit_cfg, member), \
	sizeof(((struct limit_cfg *)0)->member), kind }
	F("up", rate_Bps[DIR_UP], FIELD_NUM),
	F("down", rate_Bps[DIR_DOWN], FIELD_NUM),
	F("burst", burst_B, FIELD_NUM),
	F("ceil_up", ceil_Bps[DIR_UP], FIELD_NUM),
	F("ceil_down", ceil_Bps[DIR_DOWN], FIELD_NUM),
	F("global", global, FIELD_BOOL),
	F("offline", offline, FIELD_OFFLINE),
	F("grace_ms", grace_ms, FIELD_NUM),
	F("floor_up", floor_Bps[DIR_UP], FIELD_NUM),
	F("floor_down", floor_Bps[DIR_DOWN], FIELD_NUM),
	F("max_conns", max_conns, FIELD_NUM),
	F("max_conns_per_source", max_conns_per_source, FIELD_NUM),
	F("hosts", hosts, FIELD_NUM),
	F("hosts_seen", hosts_seen, FIELD_NUM),
#undef F
};
#define NFIELDS	(sizeof(fields) / sizeof(fields[0]))

/* The last field above ends the struct (but for its reserved word): one
 * added after it must be exported too, or a backup would lose it. */
_Static_assert(sizeof(struct limit_cfg) == offsetof(struct limit_cfg,
    reserved) + sizeof(((struct limit_cfg *)0)->reserved) &&
    offsetof(struct limit_cfg, reserved) == offsetof(struct limit_cfg,
    hosts_seen) + sizeof(uint32_t),
    "a new field of struct limit_cfg: add it to FIELDS in limit-export.c");

static const char *const offline_names[] = { "floor", "closed", "open" };

static uint64_t
field_get(const struct limit_cfg *cfg, const struct field *field)
{
	const unsigned char *at = (const unsigned char *)cfg + field->offset;
	uint64_t value64;
	uint32_t value32;

	if (field->size == sizeof(value64)) {
		memcpy(&value64, at, sizeof(value64));
		return value64;
	}
	memcpy(&value32, at, sizeof(value32));
	return value32;
}

static int
field_put(struct limit_cfg *cfg, const struct field *field, uint64_t value)
{
	unsigned char *at = (unsigned char *)cfg + field->offset;
	uint32_t value32 = (uint32_t)value;

	if (field->size == sizeof(value)) {
		memcpy(at, &value, sizeof(value));
		return 0;
	}
	if (value > UINT32_MAX)
		return ERANGE;
	memcpy(at, &value32, sizeof(value32));
	return 0;
}

static void
put_string(FILE *out, const char *text)
{
	const unsigned char *cursor;

	fputc('"', out);
	for (cursor = (const unsigned char *)text; *cursor; cursor++) {
		if (*cursor == '"' || *cursor == '\\')
			fprintf(out, "\\%c", *cursor);
		else if (*cursor < 0x20 || *cursor >= 0x7f)
			fprintf(out, "\\u%04x", *cursor);
		else
			fputc(*cursor, out);
	}
	fputc('"', out);
}

int
limit_export(struct store *store, FILE *out)
{
	struct limit_entry *entries = NULL;
	const struct field *field;
	size_t count = 0, index;
	uint64_t value;
	int rc;

	if (store && (rc = store_config_read(store, &entries, &count)))
		return rc;
	fprintf(out, "{\"format\":\"%s\",\"limits\":[", EXPORT_FORMAT);
	for (index = 0; index < count; index++) {
		fprintf(out, "%s\n{\"name\":", index ? "," : "");
		put_string(out, entries[index].name);
		fprintf(out, ",\"parent\":");
		put_string(out, entries[index].cfg.parent);
		for (field = fields; field < fields + NFIELDS; field++) {
			value = field_get(&entries[index].cfg, field);
			fprintf(out, ",\"%s\":", field->name);
			if (field->kind == FIELD_BOOL)
				fprintf(out, "%s", value ? "true" : "false");
			else if (field->kind == FIELD_OFFLINE)
				fprintf(out, "\"%s\"", value < 3 ?
				    offline_names[value] : "floor");
			else
				fprintf(out, "%" PRIu64, value);
		}
		fputc('}', out);
	}
	fprintf(out, "\n]}\n");
	free(entries);
	return ferror(out) ? EIO : 0;
}

/* --- import: a small JSON reader for what export writes ---------------- */

struct reader {
	const char *file;
	const char *text;
	size_t pos, len;
	unsigned line;
	char why[300];
};

static int
bad(struct reader *reader, const char *fmt, const char *word)
{
	char what[200];

	snprintf(what, sizeof(what), fmt, word);
	snprintf(reader->why, sizeof(reader->why), "%s:%u: %s", reader->file,
	    reader->line, what);
	return EINVAL;
}

static void
skip_space(struct reader *reader)
{
	char c;

	while (reader->pos < reader->len) {
		c = reader->text[reader->pos];
		if (c == '\n')
			reader->line++;
		else if (c != ' ' && c != '\t' && c != '\r')
			return;
		reader->pos++;
	}
}

/* The next character, past white space; '\0' at the end. */
static char
peek(struct reader *reader)
{
	skip_space(reader);
	return reader->pos < reader->len ? reader->text[reader->pos] : '\0';
}

static int
expect(struct reader *reader, char want)
{
	char got = peek(reader), what[2] = { want, '\0' };

	if (got != want)
		return bad(reader, "'%s' expected", what);
	reader->pos++;
	return 0;
}

static int
read_string(struct reader *reader, char *buf, size_t size)
{
	size_t used = 0;
	unsigned code;
	char c;

	if (expect(reader, '"'))
		return EINVAL;
	for (;;) {
		if (reader->pos >= reader->len)
			return bad(reader, "%sunterminated string", "");
		c = reader->text[reader->pos++];
		if (c == '"')
			break;
		if ((unsigned char)c < 0x20)
			return bad(reader, "%scontrol character in a string",
			    "");
		if (c == '\\') {
			if (reader->pos >= reader->len)
				return bad(reader, "%sunterminated string", "");
			c = reader->text[reader->pos++];
			if (c == 'u') {
				if (reader->pos + 4 > reader->len ||
				    sscanf(reader->text + reader->pos, "%4x",
				    &code) != 1 || code == 0 || code > 0x7f)
					return bad(reader, "%sbad \\u escape "
					    "(names are ASCII)", "");
				reader->pos += 4;
				c = (char)code;
			} else if (c == 'n')
				c = '\n';
			else if (c == 't')
				c = '\t';
			else if (c != '"' && c != '\\' && c != '/')
				return bad(reader, "%sbad escape in a string",
				    "");
		}
		if (used + 1 >= size)
			return bad(reader, "%sstring too long", "");
		buf[used++] = c;
	}
	buf[used] = '\0';
	return 0;
}

static int
read_number(struct reader *reader, const char *name, uint64_t *value)
{
	uint64_t n = 0;
	size_t start;
	char c;

	peek(reader);
	start = reader->pos;
	while (reader->pos < reader->len &&
	    (c = reader->text[reader->pos]) >= '0' && c <= '9') {
		if (n > (UINT64_MAX - (uint64_t)(c - '0')) / 10)
			return bad(reader, "field %s: number too large", name);
		n = n * 10 + (uint64_t)(c - '0');
		reader->pos++;
	}
	if (reader->pos == start)
		return bad(reader, "field %s: a whole number expected", name);
	*value = n;
	return 0;
}

static int
read_word(struct reader *reader, const char *word)
{
	size_t len = strlen(word);

	if (reader->len - reader->pos < len ||
	    memcmp(reader->text + reader->pos, word, len) != 0)
		return 1;
	reader->pos += len;
	return 0;
}

static int
read_field(struct reader *reader, const struct field *field,
    struct limit_cfg *cfg)
{
	char word[32];
	uint64_t value = 0;
	size_t index;

	if (field->kind == FIELD_BOOL) {
		peek(reader);
		if (read_word(reader, "true") == 0)
			value = 1;
		else if (read_word(reader, "false") != 0)
			return bad(reader, "field %s: true or false expected",
			    field->name);
	} else if (field->kind == FIELD_OFFLINE) {
		if (read_string(reader, word, sizeof(word)))
			return EINVAL;
		for (index = 0; index < 3; index++)
			if (strcmp(word, offline_names[index]) == 0)
				break;
		if (index == 3)
			return bad(reader, "field %s: floor, closed or open "
			    "expected", field->name);
		value = index;
	} else if (read_number(reader, field->name, &value))
		return EINVAL;
	if (field_put(cfg, field, value))
		return bad(reader, "field %s: number too large", field->name);
	return 0;
}

static int
read_limit(struct reader *reader, struct limit_entry *entry)
{
	const struct field *field;
	char key[64];
	int have_name = 0, have_parent = 0;
	unsigned seen = 0;

	memset(entry, 0, sizeof(*entry));
	if (expect(reader, '{'))
		return EINVAL;
	if (peek(reader) == '}')
		return bad(reader, "%sa limit without a name", "");
	do {
		if (read_string(reader, key, sizeof(key)) ||
		    expect(reader, ':'))
			return EINVAL;
		if (strcmp(key, "name") == 0) {
			if (have_name++)
				return bad(reader, "field %s given twice", key);
			if (read_string(reader, entry->name,
			    sizeof(entry->name)))
				return EINVAL;
			if (!limit_name_valid(entry->name))
				return bad(reader, "bad limit name '%s'",
				    entry->name);
			continue;
		}
		if (strcmp(key, "parent") == 0) {
			if (have_parent++)
				return bad(reader, "field %s given twice", key);
			if (read_string(reader, entry->cfg.parent,
			    sizeof(entry->cfg.parent)))
				return EINVAL;
			if (entry->cfg.parent[0] &&
			    !limit_name_valid(entry->cfg.parent))
				return bad(reader, "bad parent name '%s'",
				    entry->cfg.parent);
			continue;
		}
		for (field = fields; field < fields + NFIELDS; field++)
			if (strcmp(key, field->name) == 0)
				break;
		if (field == fields + NFIELDS)
			return bad(reader, "unknown field '%s'", key);
		if (seen & (1u << (field - fields)))
			return bad(reader, "field %s given twice", key);
		seen |= 1u << (field - fields);
		if (read_field(reader, field, &entry->cfg))
			return EINVAL;
	} while (peek(reader) == ',' && ++reader->pos);
	if (expect(reader, '}'))
		return EINVAL;
	if (!have_name)
		return bad(reader, "%sa limit without a name", "");
	return 0;
}

static int
read_all(const char *file, char **text, size_t *len, char *why,
    size_t why_size)
{
	FILE *in = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
	size_t cap = 65536, got;
	char *buf;

	*text = NULL;
	if (in == NULL) {
		snprintf(why, why_size, "unable to read %s: %s", file,
		    strerror(errno));
		return errno;
	}
	buf = malloc(cap);
	*len = 0;
	while (buf && (got = fread(buf + *len, 1, cap - *len, in)) > 0) {
		*len += got;
		if (*len == cap && cap < IMPORT_MAX_B) {
			char *more = realloc(buf, cap * 2);

			if (more == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = more;
			cap *= 2;
		} else if (*len == cap)
			break;
	}
	if (buf == NULL || ferror(in) || *len == cap) {
		snprintf(why, why_size, "unable to read %s: %s", file,
		    buf == NULL ? strerror(ENOMEM) : *len == cap ?
		    "too large" : strerror(errno));
		free(buf);
		if (in != stdin)
			fclose(in);
		return EINVAL;
	}
	if (in != stdin)
		fclose(in);
	*text = buf;
	return 0;
}

int
limit_import_parse(const char *file, struct import *import, char *why,
    size_t why_size)
{
	struct reader reader = { .file = strcmp(file, "-") ? file : "stdin",
	    .line = 1 };
	char *text, format[64], key[64];
	size_t cap = 0;
	int rc, have_format = 0, have_limits = 0;

	memset(import, 0, sizeof(*import));
	if ((rc = read_all(file, &text, &reader.len, why, why_size)))
		return rc;
	reader.text = text;
	rc = EINVAL;
	if (expect(&reader, '{'))
		goto out;
	do {
		if (read_string(&reader, key, sizeof(key)) ||
		    expect(&reader, ':'))
			goto out;
		if (strcmp(key, "format") == 0) {
			if (read_string(&reader, format, sizeof(format)))
				goto out;
			if (strcmp(format, EXPORT_FORMAT) != 0) {
				bad(&reader, "format '%s', not '"
				    EXPORT_FORMAT "' (not an export of this "
				    "version)", format);
				goto out;
			}
			have_format = 1;
		} else if (strcmp(key, "limits") == 0 && !have_limits++) {
			if (expect(&reader, '['))
				goto out;
			if (peek(&reader) == ']') {
				reader.pos++;
				continue;
			}
			do {
				if (import->count == cap) {
					struct limit_entry *more;
					unsigned *lines;

					cap = cap ? cap * 2 : 64;
					more = realloc(import->entries,
					    cap * sizeof(*more));
					if (more)
						import->entries = more;
					lines = realloc(import->lines,
					    cap * sizeof(*lines));
					if (lines)
						import->lines = lines;
					if (more == NULL || lines == NULL) {
						bad(&reader, "%sout of memory",
						    "");
						goto out;
					}
				}
				peek(&reader);
				import->lines[import->count] = reader.line;
				if (read_limit(&reader,
				    &import->entries[import->count]))
					goto out;
				import->count++;
			} while (peek(&reader) == ',' && ++reader.pos);
			if (expect(&reader, ']'))
				goto out;
		} else {
			bad(&reader, "unknown or repeated key '%s'", key);
			goto out;
		}
	} while (peek(&reader) == ',' && ++reader.pos);
	if (expect(&reader, '}'))
		goto out;
	if (peek(&reader) != '\0') {
		bad(&reader, "%strailing text after the export", "");
		goto out;
	}
	if (!have_format || !have_limits) {
		bad(&reader, "not an iprelay-limit export (no %s)",
		    have_format ? "\"limits\"" : "\"format\"");
		goto out;
	}
	rc = 0;
out:
	if (rc) {
		snprintf(why, why_size, "%s", reader.why);
		free(import->entries);
		free(import->lines);
		memset(import, 0, sizeof(*import));
	}
	free(text);
	return rc;
}

int
limit_import_apply(struct store *store, const char *file,
    const struct import *import, char *why, size_t why_size)
{
	size_t bad_index;
	int rc;

	rc = store_config_replace(store, import->entries, import->count,
	    &bad_index);
	if (rc && bad_index < import->count)
		snprintf(why, why_size, "%s:%u: limit %s: %s",
		    strcmp(file, "-") ? file : "stdin",
		    import->lines[bad_index], import->entries[bad_index].name,
		    rc == EEXIST ? "given twice" : rc == EINVAL ?
		    "a value out of range" : store_strerror(rc));
	else if (rc)
		snprintf(why, why_size, "unable to import %s: %s", file,
		    store_strerror(rc));
	return rc;
}

void
limit_import_free(struct import *import)
{
	free(import->entries);
	free(import->lines);
	memset(import, 0, sizeof(*import));
}

/* export: the configuration as JSON. */
int
command_export(const struct options *options)
{
	struct store *store;
	int rc;

	need_words(options, 0, "");
	store = open_for_reading(options);
	rc = limit_export(store, stdout);
	store_close(store);
	if (rc == 0 && fflush(stdout) != 0)
		rc = errno;
	if (rc)
		log_fatal(EXIT_SYSTEM, "unable to export the limits of %s: %s",
		    store_path(options), store_strerror(rc));
	return 0;
}

/* import FILE: all of it checked before one commit, or nothing. */
int
command_import(const struct options *options)
{
	struct import import;
	struct store *store;
	char why[600];
	int rc;

	need_words(options, 1, "FILE");
	if (limit_import_parse(options->words[0], &import, why, sizeof(why)))
		log_fatal(EXIT_USAGE, "%s; nothing imported", why);
	store = open_for_writing(options);
	rc = limit_import_apply(store, options->words[0], &import, why,
	    sizeof(why));
	if (rc == 0)
		rc = store_sync(store);
	store_close(store);
	if (rc)
		log_fatal(rc == ENOSPC || rc == EIO || rc == ENOMEM ?
		    EXIT_SYSTEM : EXIT_USAGE, "%s; nothing imported", why);
	say_store();
	printf("imported %zu limit%s from %s; every other limit is gone\n",
	    import.count, import.count == 1 ? "" : "s",
	    strcmp(options->words[0], "-") ? options->words[0] : "stdin");
	limit_import_free(&import);
	return 0;
}

