# syntax=docker/dockerfile:1
# The clipgate gateway. Build stage: the whole toolchain, compiles src/ to dist/. Runtime stage: Node, the
# production dependencies and dist/ only, as the unprivileged `node` user (uid 1000). test/docker/runtime-stage.test.ts
# assembles what the runtime stage copies into an empty directory, installs what it installs and starts the
# gateway from there with this CMD; hadolint checks this file in the test command.

FROM node:20.20.0-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20.20.0-bookworm-slim AS runtime
ENV NODE_ENV=production \
    PORT=8080 \
    HOST=0.0.0.0 \
    IMAGE_STORE_DIR=/var/lib/clipgate/images
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
    && npm cache clean --force \
    && mkdir -p /var/lib/clipgate/images \
    && chown node:node /var/lib/clipgate/images
COPY --from=build /app/dist ./dist
# The image's `node` user, by number (hosts resolve numbers, not names).
USER 1000:1000
EXPOSE 8080
# Ready, not merely alive: a draining replica (SIGTERM) reports unhealthy at once.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/health/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Exec form: node is PID 1 and gets SIGTERM itself; src/server.ts drains on it (DRAIN_GRACE_MS).
CMD ["node", "--max-semi-space-size=64", "dist/server.js"]
