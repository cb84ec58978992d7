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
#    one), plus @kubernetes/client-node at its locked version: an optional peer
#    dependency of the npm package (library users rarely need it), which the
#    image keeps so that a mounted kubeconfig with an exec or auth-provider
#    user, or a proxy-url, works. Moved to "dependencies" here only, so that
#    the prune keeps it and its dependencies.
FROM node:${NODE_MAJOR}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && version="$(npm pkg get 'devDependencies.@kubernetes/client-node' | tr -d '"')" \
 && npm pkg delete 'devDependencies.@kubernetes/client-node' \
 && npm pkg set "dependencies.@kubernetes/client-node=${version}" \
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
