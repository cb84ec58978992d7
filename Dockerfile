# syntax=docker/dockerfile:1
#
# The controller image: compiled JavaScript and production dependencies on a
# distroless Node.js base (no shell, no package manager), running as the
# non-root UID 65532 that the Deployment's securityContext expects.
#
#   docker build -t registry.example.com/kube-workerpool-controller:0.1.0 .
#
# No image is published; build and push your own, then point the install at
# it (README.md, "The container image").

# Node.js LTS line for both the build and the run time. The distroless tag
# below must name the same major version.
ARG NODE_MAJOR=24

# 1. Compile TypeScript to lib/ with the full (dev) dependencies.
FROM node:${NODE_MAJOR}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json tsconfig.cjs.json ./
COPY src ./src
COPY constructs ./constructs
RUN npm run build

# 2. Production dependencies only, without install scripts (none of them needs
#    one), plus the optional peer dependencies at their locked versions: the
#    npm package leaves the controller's own packages (@peculiar/x509, mqtt,
#    node-forge, prom-client, reflect-metadata, yaml; @kubernetes/client-node for exec/auth-provider/proxy-url
#    kubeconfigs) to those who run the controller, so that cdk8s apps using
#    the constructs do not install them; the image runs the controller, so it
#    has them all. Moved to "dependencies" here only, so that the prune keeps
#    them and what they depend on.
FROM node:${NODE_MAJOR}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && node -e "const fs = require('node:fs'); const p = JSON.parse(fs.readFileSync('package.json', 'utf8')); \
      for (const name of Object.keys(p.peerDependenciesMeta)) { p.dependencies[name] = p.devDependencies[name]; delete p.devDependencies[name]; } \
      fs.writeFileSync('package.json', JSON.stringify(p))" \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# 3. Run time: no shell, no npm; just node, the compiled code and its dependencies.
FROM gcr.io/distroless/nodejs${NODE_MAJOR}-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production
# Owned by root and readable by all: the controller cannot change its own code.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/lib ./lib
# "type": "module": lib/ is ES modules.
COPY package.json ./
USER 65532:65532
# Metrics (8443, when enabled) and health probes (8081), as the Deployment sets them.
EXPOSE 8443 8081
# The Deployment passes the flags as container args, appended to this.
ENTRYPOINT ["/nodejs/bin/node", "lib/src/controller/cli/main.js"]
