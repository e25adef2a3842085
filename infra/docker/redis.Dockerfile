# Redis from Debian's redis-server. The command line says where it listens, e.g.
#   docker run --network host emotionmuse/redis:local --port 6379 --bind 127.0.0.1
ARG BASE=emotionmuse/debian:bookworm
FROM ${BASE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server tini >/dev/null \
 && rm -rf /var/lib/apt/lists/* && mkdir -p /data && chown redis:redis /data
USER redis
WORKDIR /data
VOLUME /data
ENTRYPOINT ["/usr/bin/tini", "--", "redis-server", "--dir", "/data", "--protected-mode", "yes"]
CMD ["--port", "6379", "--bind", "127.0.0.1", "--appendonly", "yes"]
