import { describe, expect, test } from 'vitest';
import { checkRunnerImageAllowed, registryHost } from '../../src/controller/runs/image-host.js';

describe('registryHost', () => {
  test.each([
    ['ubuntu', 'docker.io'],
    ['ubuntu:22.04', 'docker.io'],
    ['library/ubuntu:22.04', 'docker.io'],
    ['spacelift/runner-terraform', 'docker.io'],
    ['spacelift/runner-terraform@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', 'docker.io'],
    ['docker.io/library/ubuntu', 'docker.io'],
    ['index.docker.io/library/ubuntu', 'docker.io'],
    ['registry-1.docker.io/library/ubuntu', 'docker.io'],
    ['public.ecr.aws/spacelift/runner-terraform:latest', 'public.ecr.aws'],
    ['ghcr.io/org/team/image@sha256:abc', 'ghcr.io'],
    ['ghcr.io/org/image:1.0@sha256:abc', 'ghcr.io'],
    ['localhost/img', 'localhost'],
    ['localhost:5000/img:tag', 'localhost:5000'],
    ['registry:5000/img', 'registry:5000'],
    ['GHCR.IO/org/img', 'ghcr.io'],
    ['MyRegistry/img', 'myregistry'],
    ['[::1]:5000/img', '[::1]:5000'],
    ['123456789012.dkr.ecr.eu-west-1.amazonaws.com/runner:v1', '123456789012.dkr.ecr.eu-west-1.amazonaws.com'],
  ])('%s -> %s', (image, host) => {
    expect(registryHost(image)).toBe(host);
  });

  test('a tag containing a colon-like port is not a host', () => {
    // "img:5000" has no slash: it is Docker Hub's "img" with tag 5000.
    expect(registryHost('img:5000')).toBe('docker.io');
  });

  test('a one-character name is a Docker Hub image', () => {
    expect(registryHost('a')).toBe('docker.io');
  });

  test('empty reference has no host', () => {
    expect(registryHost('')).toBeUndefined();
    expect(registryHost('  ')).toBeUndefined();
    expect(registryHost('@sha256:abc')).toBeUndefined();
  });
});

describe('checkRunnerImageAllowed', () => {
  test('absent or empty list allows everything', () => {
    expect(checkRunnerImageAllowed('evil.example.com/x', undefined)).toEqual({ ok: true });
    expect(checkRunnerImageAllowed('evil.example.com/x', [])).toEqual({ ok: true });
  });

  test('allowed host passes, case-insensitively', () => {
    expect(checkRunnerImageAllowed('public.ecr.aws/spacelift/runner:1', ['public.ecr.aws'])).toEqual({ ok: true });
    expect(checkRunnerImageAllowed('Public.ECR.aws/spacelift/runner:1', ['PUBLIC.ecr.AWS'])).toEqual({ ok: true });
  });

  test('any host of the list allows, and listed hosts are trimmed', () => {
    expect(checkRunnerImageAllowed('ghcr.io/org/runner:1', ['public.ecr.aws', 'ghcr.io'])).toEqual({ ok: true });
    expect(checkRunnerImageAllowed('ghcr.io/org/runner:1', [' ghcr.io '])).toEqual({ ok: true });
  });

  test('the reason calls it the runner image unless told otherwise', () => {
    expect(checkRunnerImageAllowed('evil.example.com/runner:1', ['ghcr.io'])).toEqual({
      ok: false,
      reason: 'runner image "evil.example.com/runner:1" is from registry host "evil.example.com", which is not in the pool\'s allowedRunnerImageHosts (ghcr.io)',
    });
  });

  test('Docker Hub spellings are one host', () => {
    expect(checkRunnerImageAllowed('ubuntu:22.04', ['docker.io'])).toEqual({ ok: true });
    expect(checkRunnerImageAllowed('ubuntu:22.04', ['index.docker.io'])).toEqual({ ok: true });
    expect(checkRunnerImageAllowed('index.docker.io/library/ubuntu', ['docker.io'])).toEqual({ ok: true });
  });

  test('another host is refused with a reason naming the host and the list', () => {
    const r = checkRunnerImageAllowed('evil.example.com/runner:1', ['public.ecr.aws', 'ghcr.io']);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reason).toContain('"evil.example.com"');
    expect(r.reason).toContain('evil.example.com/runner:1');
    expect(r.reason).toContain('public.ecr.aws, ghcr.io');
  });

  test('Docker Hub image is refused when only other hosts are allowed', () => {
    const r = checkRunnerImageAllowed('ubuntu', ['ghcr.io']);
    expect(r).toEqual({ ok: false, reason: expect.stringContaining('"docker.io"') });
  });

  test('the port is part of the host', () => {
    expect(checkRunnerImageAllowed('registry.example.com:5000/x', ['registry.example.com']).ok).toBe(false);
    expect(checkRunnerImageAllowed('registry.example.com:5000/x', ['registry.example.com:5000']).ok).toBe(true);
  });

  test('a host that only shares a suffix or prefix is refused', () => {
    expect(checkRunnerImageAllowed('evilghcr.io/x', ['ghcr.io']).ok).toBe(false);
    expect(checkRunnerImageAllowed('ghcr.io.evil.com/x', ['ghcr.io']).ok).toBe(false);
  });

  test('an invalid reference is refused when a list is set', () => {
    const r = checkRunnerImageAllowed('', ['ghcr.io']);
    expect(r).toEqual({ ok: false, reason: expect.stringContaining('not a valid image reference') });
  });
});
