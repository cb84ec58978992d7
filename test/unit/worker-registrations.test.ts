import { describe, expect, it } from 'vitest';
import { Registrations } from '../../src/controller/worker/registrations.js';

const written = { privateKeyPem: 'KEY-1', certificatePem: 'CERT-1', caPem: 'CA' };

describe('Registrations', () => {
  it('completes a cached Secret that does not show the registration yet', () => {
    const r = new Registrations();
    r.written('ns/w', written);
    expect(r.complete('ns/w', { privateKeyPem: 'KEY-1' })).toEqual({ privateKeyPem: 'KEY-1', certificatePem: 'CERT-1', caPem: 'CA' });
  });

  it('never lends a certificate to another key (a Secret emptied by hand needs a new registration)', () => {
    const r = new Registrations();
    r.written('ns/w', written);
    expect(r.complete('ns/w', { privateKeyPem: 'KEY-2' })).toEqual({ privateKeyPem: 'KEY-2' });
    expect(r.complete('ns/other', { privateKeyPem: 'KEY-1' })).toEqual({ privateKeyPem: 'KEY-1' });
  });

  it('lets go once the cache shows a certificate, and on forget', () => {
    const r = new Registrations();
    r.written('ns/w', written);
    expect(r.complete('ns/w', { privateKeyPem: 'KEY-1', certificatePem: 'CERT-2', caPem: 'CA' }).certificatePem).toBe('CERT-2');
    expect(r.complete('ns/w', { privateKeyPem: 'KEY-1' })).toEqual({ privateKeyPem: 'KEY-1' });
    r.written('ns/w', written);
    r.forget('ns/w');
    expect(r.complete('ns/w', { privateKeyPem: 'KEY-1' })).toEqual({ privateKeyPem: 'KEY-1' });
  });
});
