# executord's container image: a build stage compiles a Release binary; the runtime stage
# holds only its shared libraries and python3 (the interpreter sandboxes run, bound
# read-only from this image's /usr, /lib, /lib64, /bin, /sbin). See README "Container"
# for the privileges it must run with; deploy/docker/ holds the seccomp profile and the
# capability list.

FROM debian:12 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      gcc libc6-dev cmake make pkg-config \
      libmicrohttpd-dev libjansson-dev libseccomp-dev uuid-dev libsqlite3-dev nettle-dev libnftables-dev \
      libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake/ cmake/
COPY api/ api/
COPY src/ src/
COPY sandbox/ sandbox/
COPY migrations/ migrations/
COPY migrations_pg/ migrations_pg/
COPY openapi.yaml ./
# tests/ is not in the context: the CMakeLists only builds unit tests when cmocka and
# tests/unit exist, and neither does here.
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build build -j"$(nproc)" --target executord \
 && install -D -m 0755 build/executord /out/usr/local/bin/executord

FROM debian:12-slim
# Runtime libraries only (Debian 12 names) and the sandboxes' interpreter, with pip for
# jobs' dependencies (docs/dependencies.md); no compiler.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libmicrohttpd12 libjansson4 libseccomp2 libuuid1 libsqlite3-0 libnettle8 libnftables1 libpq5 slirp4netns \
      python3 python3-pip ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/executord /run/executord-uid-slots \
 && chmod 0700 /var/lib/executord /run/executord-uid-slots
COPY --from=build /out/ /

# A documented, non-default configuration (every EXECUTORD_* variable is in
# `executord --help`; a command-line flag wins over its variable).
ENV EXECUTORD_LISTEN=0.0.0.0:8080 \
    EXECUTORD_DATA_DIR=/var/lib/executord \
    EXECUTORD_BACKEND=pool \
    EXECUTORD_PYTHON=/usr/bin/python3 \
    EXECUTORD_LOG_LEVEL=info \
    EXECUTORD_SHUTDOWN_GRACE_SECONDS=20 \
    EXECUTORD_RETENTION_SECONDS=259200 \
    EXECUTORD_DEFAULT_TIMEOUT_SECONDS=30 \
    EXECUTORD_MAX_TIMEOUT_SECONDS=600 \
    EXECUTORD_DEFAULT_MEMORY_MB=256
# No EXECUTORD_MAX_MEMORY_MB: the largest job then follows the memory budget, 80% of the
# container's memory limit, so a small container starts too.

# The job store (SQLite, WAL) and the work folders: keep it across container restarts.
VOLUME ["/var/lib/executord"]
EXPOSE 8080

# No curl in the image: executord checks itself (GET /readyz on EXECUTORD_LISTEN; 0 ready,
# 1 not, with the reason in `docker inspect`).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/executord", "--healthcheck"]

# PID 1: executord puts a minimal init of its own in front (src/pid1.c): it forwards
# SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2, reaps orphans, exits with the service's
# status. `docker stop` = SIGTERM = graceful shutdown (running jobs get
# EXECUTORD_SHUTDOWN_GRACE_SECONDS; give docker stop -t more than that).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/executord"]

# Run (each privilege is explained in README "Container"; the capability list is
# deploy/docker/capabilities). No token file is configured: executord generates its API
# token in the volume at first start (docker exec executord cat /var/lib/executord/api-token);
# `direct` is not enabled (EXECUTORD_BACKENDS and the CHOWN capability to use it):
#   docker run -d --name executord -p 8080:8080 -v executord-data:/var/lib/executord \
#     --cap-drop ALL --cap-add SETUID --cap-add SETGID \
#     --security-opt seccomp=deploy/docker/seccomp.json \
#     --security-opt apparmor=unconfined \
#     --security-opt systempaths=unconfined \
#     --security-opt no-new-privileges:true \
#     --cgroupns private --security-opt writable-cgroups=true \
#     --stop-timeout 30 executord
