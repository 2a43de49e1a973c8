# tailjet's container image: a build stage with the -dev packages, and a runtime stage with only
# the shared libraries tailjet links (ldd build/tailjet), curl for the health check, and a
# non-root user. Build it from the repository's root:
#
#   docker build -t tailjet .
#
# BASE is any Debian 12 image (the packaging test builds on one made with debootstrap, as no
# registry can be reached there: --build-arg BASE=tjbase:bookworm). apt-get needs Debian's
# mirror from both stages (with a private engine without a bridge: docker build --network host).
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      gcc libc6-dev make cmake pkg-config \
      libpcre2-dev librdkafka-dev libcjson-dev libcurl4-openssl-dev libmicrohttpd-dev \
      libdeflate-dev zlib1g-dev libxxhash-dev \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Only the tailjet target; warnings are CI's business (-Werror there), not a release build's.
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTJ_WERROR=OFF \
 && cmake --build /build --target tailjet -j"$(nproc)" \
 && strip -o /tailjet /build/tailjet \
 && /tailjet --version

FROM ${BASE}
# The runtime libraries (libpcre2-8-0 and zlib1g come with every Debian base; xxHash is
# inlined), curl for the stack's health check (about 0.5 MB over the libcurl4 tailjet needs
# anyway), CA certificates for TLS peers.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      libpcre2-8-0 librdkafka1 libcjson1 libcurl4 libmicrohttpd12 libdeflate0 curl ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/tailjet --no-create-home \
      --shell /usr/sbin/nologin tailjet \
 && install -d -m 0770 -o tailjet -g root /var/lib/tailjet
COPY --from=build /tailjet /usr/local/bin/tailjet
# The state directory is owned by tailjet and group root (0770): the non-root default user and a
# root user without capabilities (the stack's, user "0:0" with cap_drop ALL) can both write it.
# In a container, metrics listen on the container's own interfaces (its network namespace).
# The default output is a file on the state volume, not stdout: a tailjet that discovers its own
# container would ship its own output again, without end.
ENV TAILJET_STATE_DIR=/var/lib/tailjet \
    TAILJET_METRICS_ADDR=0.0.0.0:9284 \
    TAILJET_OUTPUT=file:/var/lib/tailjet/records.ndjson
USER tailjet
EXPOSE 9284
ENTRYPOINT ["tailjet"]
CMD ["run"]
