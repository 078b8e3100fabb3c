/* Files built into the binary by cmake/embed.cmake: the dashboard (every file of api/dashboard) and
 * the OpenAPI document, so the service needs nothing beside it to serve them. */
#ifndef EXECUTORD_API_ASSETS_H
#define EXECUTORD_API_ASSETS_H

#include <stddef.h>

struct api_asset {
    const char *name;         /* file name, e.g. "app.js" */
    const char *content_type; /* chosen by extension at build time */
    const char *data;
    size_t len;
};

extern const struct api_asset api_assets[];
extern const int api_assets_count;

/* openapi.yaml, NUL-terminated. */
extern const char api_openapi_yaml[];

#endif
