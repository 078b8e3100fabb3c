/* Streamed response bodies (see body.h): a list of parts, and a cursor that turns the next
 * part into bytes when libmicrohttpd has room for them. A piece of stored data is read,
 * converted and handed out before the next one is read, so a response costs at most a
 * piece (4 MiB of a result; 64 KiB of output, 6 x 16 KiB as JSON) however large the
 * window or the result. */
#include "api/body.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/render.h"
#include "src/utf8.h"

/* Raw bytes are handed out as read; a piece of the stored chunks (64 KiB each) is one or
 * two rows. JSON pieces are smaller because escaping may grow them six-fold. */
#define RAW_PIECE (64u << 10)
#define JSON_PIECE (16u << 10)
/* A result is one SQLite value: reading from offset X walks its overflow pages from the
 * start (X / 4 KiB page reads), and a read transaction cannot be held between pieces (a
 * slow client would pin the WAL and stall the store's TRUNCATE checkpoints). So a result
 * goes out in 16 pieces of 1 to 4 MiB: measured on a 64 MiB result, 64 KiB pieces took
 * 27 s of CPU, 1 MiB 1.7 s, 4 MiB 0.36 s, one handle throughout 0.05 s. */
#define RESULT_PIECES 16u
#define RESULT_PIECE_MIN (1u << 20)
#define RESULT_PIECE_MAX (4u << 20)

typedef enum part_kind { PART_TEXT, PART_OUTPUT, PART_OUTPUT_JSON, PART_RESULT } part_kind;

typedef struct part {
    part_kind kind;
    int stream;
    char *text;          /* PART_TEXT: owned */
    uint64_t from, to;   /* PART_TEXT: into text; otherwise byte offsets in the stored data */
} part;

struct api_body {
    store *st;
    char job_id[JOB_ID_LEN + 1];
    part *parts;
    size_t n, cap;
    size_t cur;          /* the part being sent */
    uint64_t pos;        /* where in it */
    char *pending;       /* converted bytes not yet handed out */
    size_t pending_len, pending_off;
    bool sized;
    uint64_t size;
};

api_body *api_body_new(store *st, const char *job_id)
{
    api_body *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->st = st;
    snprintf(b->job_id, sizeof b->job_id, "%s", job_id);
    b->sized = true;
    return b;
}

void api_body_free(api_body *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++)
        free(b->parts[i].text);
    free(b->parts);
    free(b->pending);
    free(b);
}

static int add(api_body *b, part p)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        part *grown = realloc(b->parts, cap * sizeof *grown);
        if (!grown)
            return -1;
        b->parts = grown;
        b->cap = cap;
    }
    if (p.kind == PART_OUTPUT_JSON)
        b->sized = false;
    b->size += p.to - p.from;
    if (b->n == 0)
        b->pos = p.from;
    b->parts[b->n++] = p;
    return 0;
}

int api_body_text(api_body *b, const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, text, len);
    copy[len] = '\0';
    if (add(b, (part){.kind = PART_TEXT, .text = copy, .from = 0, .to = len}) != 0) {
        free(copy);
        return -1;
    }
    return 0;
}

int api_body_output(api_body *b, int stream, uint64_t from, uint64_t to, bool json)
{
    return add(b, (part){.kind = json ? PART_OUTPUT_JSON : PART_OUTPUT, .stream = stream,
                         .from = from, .to = to > from ? to : from});
}

int api_body_result(api_body *b, uint64_t from, uint64_t to)
{
    return add(b, (part){.kind = PART_RESULT, .from = from, .to = to > from ? to : from});
}

uint64_t api_body_size(const api_body *b)
{
    return b->sized ? b->size : UINT64_MAX;
}

static void next_part(api_body *b)
{
    b->cur++;
    if (b->cur < b->n)
        b->pos = b->parts[b->cur].from;
}

/* Script output as JSON string content: repaired to valid UTF-8, then escaped. A piece
 * that is not the window's last ends before a character it would cut (the next piece
 * starts with it). Takes data; returns the number of input bytes used, or 0 on failure. */
static size_t convert_json(api_body *b, char *data, size_t len, bool last)
{
    size_t keep = last ? len : utf8_complete_len(data, len);
    if (keep == 0)
        keep = len; /* cannot happen with pieces longer than a character */
    size_t clean_len = 0;
    char *clean = utf8_sanitize(data, keep, &clean_len);
    free(data);
    char *out = clean ? malloc(clean_len * 6 + 1) : NULL;
    if (!out) {
        free(clean);
        return 0;
    }
    b->pending = out;
    b->pending_len = api_json_escape(clean, clean_len, out);
    free(clean);
    return keep;
}

/* Reads and converts the next piece of the current stored part into pending. */
static int refill(api_body *b)
{
    part *p = &b->parts[b->cur];
    uint64_t left = p->to - b->pos;
    size_t want = p->kind == PART_OUTPUT_JSON ? JSON_PIECE : RAW_PIECE;
    if (p->kind == PART_RESULT) {
        uint64_t share = (p->to - p->from) / RESULT_PIECES;
        want = share < RESULT_PIECE_MIN ? RESULT_PIECE_MIN
             : share > RESULT_PIECE_MAX ? RESULT_PIECE_MAX : (size_t)share;
    }
    if (left < want)
        want = (size_t)left;
    char *data = NULL;
    size_t len = 0;
    uint64_t total;
    store_rc rc = p->kind == PART_RESULT
                      ? store_read_result(b->st, b->job_id, b->pos, want, &data, &len, &total)
                      : store_read_output(b->st, b->job_id, p->stream, b->pos, want, &data, &len);
    /* The range was measured before the answer began and stored data only grows, so less
     * than asked means the job was deleted (or its output evicted) meanwhile. */
    if (rc != STORE_OK || len < want) {
        free(data);
        return -1;
    }
    free(b->pending);
    b->pending = NULL;
    b->pending_len = b->pending_off = 0;
    if (p->kind == PART_OUTPUT_JSON) {
        size_t used = convert_json(b, data, len, b->pos + len == p->to);
        if (used == 0)
            return -1;
        b->pos += used;
    } else {
        b->pending = data;
        b->pending_len = len;
        b->pos += len;
    }
    return 0;
}

ssize_t api_body_read(api_body *b, char *buf, size_t max)
{
    size_t done = 0;
    while (done < max) {
        if (b->pending_off < b->pending_len) {
            size_t k = b->pending_len - b->pending_off;
            if (k > max - done)
                k = max - done;
            memcpy(buf + done, b->pending + b->pending_off, k);
            b->pending_off += k;
            done += k;
            continue;
        }
        if (b->cur >= b->n)
            break;
        part *p = &b->parts[b->cur];
        if (b->pos >= p->to) {
            next_part(b);
        } else if (p->kind == PART_TEXT) {
            size_t k = (size_t)(p->to - b->pos);
            if (k > max - done)
                k = max - done;
            memcpy(buf + done, p->text + b->pos, k);
            b->pos += k;
            done += k;
        } else if (refill(b) != 0) {
            return -1;
        }
    }
    return (ssize_t)done;
}
