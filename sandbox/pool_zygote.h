/* The pool's zygote program (sandbox/pool_zygote.py, embedded): the service sends it to
 * the runner started with --zygote as the first message, so the cold runner stays small. */
#ifndef EXECUTORD_SANDBOX_POOL_ZYGOTE_H
#define EXECUTORD_SANDBOX_POOL_ZYGOTE_H

extern const char pool_zygote_source[];

#endif
