# Prometheus from Debian's package, with the project's scrape configurations and rules under
# /etc/emotionmuse/prometheus (build.sh puts infra/prometheus in the build context).
ARG BASE=emotionmuse/debian:bookworm
FROM ${BASE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus tini >/dev/null \
 && rm -rf /var/lib/apt/lists/* && mkdir -p /prometheus && chown prometheus:prometheus /prometheus
COPY prometheus /etc/emotionmuse/prometheus
USER prometheus
VOLUME /prometheus
ENTRYPOINT ["/usr/bin/tini", "--", "prometheus", "--storage.tsdb.path=/prometheus"]
CMD ["--config.file=/etc/emotionmuse/prometheus/prometheus.compose.yml", "--web.listen-address=127.0.0.1:9090"]
