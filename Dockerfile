# Multi-stage build of fidelisd and the fidelis CLI on Debian 12 (bookworm).
#   podman build --build-arg FIDELIS_COMMIT=$(git rev-parse --short=12 HEAD) -t fidelis .
#   podman run --rm -p 127.0.0.1:50051:50051 -p 127.0.0.1:8080:8080 -v ./secrets:/secrets:ro \
#     -e FIDELIS_ARGS="--tls_cert_file=/secrets/cert.pem --tls_key_file=/secrets/key.pem \
#                      --admin_token_file=/secrets/admin.token" fidelis
# fidelisd listens on 0.0.0.0:50051 inside the container (FIDELIS_LISTEN), where it refuses to
# start without TLS and an admin token unless FIDELIS_ARGS holds --insecure; its HTTP listener
# (/metrics, /healthz, /readyz, the console) on 0.0.0.0:8080 (FIDELIS_HTTP_LISTEN) needs the
# admin token too. It runs as uid and
# gid 10001: secrets it reads and a data directory bound at /data must be readable (and /data
# writable) by that uid (docs/operations.md, "The container").
FROM debian:bookworm AS build
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      build-essential cmake pkg-config libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev \
      protobuf-compiler libabsl-dev librocksdb-dev libspdlog-dev libcli11-dev libnats-dev \
      libcpp-httplib-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY proto proto
COPY domain domain
COPY storage storage
COPY server server
COPY clients clients
# The tree has no .git here: --version reports this commit ("unknown" when not given).
ARG FIDELIS_COMMIT=unknown
# Warnings are errors in CI's build (-O2); here, at -O3, GCC 12 has false positives
# (-Wrestrict in std::string) that must not stop an image build.
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DFIDELIS_BUILD_TESTS=OFF -DFIDELIS_WERROR=OFF \
      -DFIDELIS_GIT_COMMIT="$FIDELIS_COMMIT" \
    && cmake --build build -j"$(nproc)" --target fidelisd fidelis
# Gather the binaries and every shared library they need beyond glibc, which the runtime
# image already has.
RUN mkdir -p /out/bin /out/lib \
    && cp build/server/fidelisd build/clients/fidelis /out/bin/ \
    && strip /out/bin/* \
    && ldd /out/bin/fidelisd /out/bin/fidelis | awk '/=> \//{print $3}' | sort -u \
       | grep -Ev '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux[^/]*)\.so' \
       | xargs -I{} cp -L {} /out/lib/

FROM debian:bookworm-slim
COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build /out/lib/ /usr/local/lib/fidelis/
ENV LD_LIBRARY_PATH=/usr/local/lib/fidelis \
    FIDELIS_LISTEN=0.0.0.0:50051 \
    FIDELIS_HTTP_LISTEN=0.0.0.0:8080 \
    FIDELIS_ARGS=""
# A fixed uid and gid, so that the owner of bind-mounted secrets and data can be set ahead.
RUN groupadd --system --gid 10001 fidelis \
    && useradd --system --uid 10001 --gid 10001 --home /data fidelis \
    && mkdir -p /data && chown 10001:10001 /data
USER 10001:10001
VOLUME /data
EXPOSE 50051 8080
# A shell form so that FIDELIS_LISTEN picks the address; exec keeps fidelisd as PID 1 so it
# receives SIGTERM from `podman stop` and shuts down gracefully.
CMD exec fidelisd --listen="$FIDELIS_LISTEN" --http_listen="$FIDELIS_HTTP_LISTEN" --data_dir=/data \
    $FIDELIS_ARGS
