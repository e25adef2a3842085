# The EmotionMuse processors and CLI. One image, one processor per container:
#   docker run emotionmuse run passthrough
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY cli ./cli
COPY runtime ./runtime
COPY schemas ./schemas
COPY topology ./topology
COPY processors ./processors
COPY vision ./vision
COPY auth ./auth
COPY infra ./infra
COPY models ./models
COPY sessions ./sessions
COPY edge ./edge
COPY bench ./bench
USER node
ENTRYPOINT ["node", "bin/emotionmuse.js"]
CMD ["--help"]
