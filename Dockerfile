# Multi-stage build of fidelisd and the fidelis CLI on Debian 12 (bookworm).
#   podman build -t fidelis:dev .
#   podman run --rm -v fidelis-data:/data fidelis:dev
# FIDELIS_LISTEN sets the address; FIDELIS_ARGS adds flags (TLS, tokens, or --insecure to
# listen beyond loopback without them).
FROM debian:bookworm AS build
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      build-essential cmake pkg-config libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev \
      protobuf-compiler libabsl-dev librocksdb-dev libspdlog-dev libcli11-dev libnats-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY proto proto
COPY domain domain
COPY storage storage
COPY server server
COPY clients clients
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DFIDELIS_BUILD_TESTS=OFF \
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
    FIDELIS_LISTEN=127.0.0.1:50051 \
    FIDELIS_ARGS=""
RUN useradd --system --home /data fidelis && mkdir -p /data && chown fidelis /data
USER fidelis
VOLUME /data
EXPOSE 50051
# A shell form so that FIDELIS_LISTEN picks the address; exec keeps fidelisd as PID 1 so it
# receives SIGTERM from `podman stop` and shuts down gracefully.
CMD exec fidelisd --listen="$FIDELIS_LISTEN" --data_dir=/data $FIDELIS_ARGS
