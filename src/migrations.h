/* The numbered SQL migrations from migrations/, embedded at build time in order. */
#ifndef EXECUTORD_MIGRATIONS_H
#define EXECUTORD_MIGRATIONS_H

struct migration {
    int version;       /* the NNN of NNN_description.sql */
    const char *name;  /* file name */
    const char *sql;
};

extern const struct migration migrations[];
extern const int migrations_count;

#endif
