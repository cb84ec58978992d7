/**
 * Registry hosts of image references, for `spec.allowedRunnerImageHosts`.
 *
 * Follows the Docker reference rules (`github.com/distribution/reference`,
 * `splitDockerDomain`): the part before the first `/` is a registry host only
 * if it contains a `.` or a `:`, is `localhost`, or has an upper-case letter
 * (repository paths are lower-case); otherwise the image is on Docker Hub,
 * `docker.io`. A tag (`:1.2`) or digest (`@sha256:...`) never changes the host.
 *
 * @module
 */

/** Docker Hub's canonical host name. */
export const DOCKER_HUB_HOST = 'docker.io';

/** Other names of Docker Hub, treated as {@link DOCKER_HUB_HOST} on both sides of a comparison. */
const DOCKER_HUB_ALIASES: ReadonlySet<string> = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/**
 * The registry host of an image reference, lower-cased, with its port if any;
 * Docker Hub in any spelling is `docker.io`.
 *
 * | image | host |
 * | --- | --- |
 * | `ubuntu:22.04`, `library/ubuntu`, `index.docker.io/x/y` | `docker.io` |
 * | `public.ecr.aws/spacelift/runner-terraform:latest` | `public.ecr.aws` |
 * | `localhost/img`, `localhost:5000/img` | `localhost`, `localhost:5000` |
 * | `registry:5000/img@sha256:...` | `registry:5000` |
 *
 * @returns `undefined` for an empty reference
 */
export function registryHost(image: string): string | undefined {
  let ref = image.trim();
  const at = ref.indexOf('@');
  if (at >= 0) ref = ref.slice(0, at);
  if (ref === '') return undefined;
  const slash = ref.indexOf('/');
  if (slash < 0) return DOCKER_HUB_HOST;
  const first = ref.slice(0, slash);
  const isHost = first.includes('.') || first.includes(':') || first === 'localhost' || first.toLowerCase() !== first;
  if (!isHost) return DOCKER_HUB_HOST;
  return normalizeHost(first);
}

/** Lower-cases a host and maps Docker Hub's aliases to `docker.io`, so that comparisons are by meaning. */
export function normalizeHost(host: string): string {
  const h = host.trim().toLowerCase();
  return DOCKER_HUB_ALIASES.has(h) ? DOCKER_HUB_HOST : h;
}

export type ImageCheck = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * Whether a run may use this runner image under `spec.allowedRunnerImageHosts`.
 *
 * An absent or empty list allows every image. Hosts compare case-insensitively
 * and exactly, port included (`registry.example.com` does not allow
 * `registry.example.com:5000`); `docker.io`, `index.docker.io` and
 * `registry-1.docker.io` are the same host.
 *
 * @returns `{ ok: false, reason }` with a reason naming the image, its host and
 *   the allowed hosts, ready to be reported as the run's failure.
 */
export function checkRunnerImageAllowed(image: string, allowedHosts: readonly string[] | undefined, what = 'runner image'): ImageCheck {
  if (allowedHosts === undefined || allowedHosts.length === 0) return { ok: true };
  const list = allowedHosts.join(', ');
  const host = registryHost(image);
  if (host === undefined) {
    return { ok: false, reason: `${what} ${JSON.stringify(image)} is not a valid image reference (allowedRunnerImageHosts: ${list})` };
  }
  if (allowedHosts.some((h) => normalizeHost(h) === host)) return { ok: true };
  return {
    ok: false,
    reason: `${what} ${JSON.stringify(image)} is from registry host "${host}", which is not in the pool's allowedRunnerImageHosts (${list})`,
  };
}
