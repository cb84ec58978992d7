/**
 * The X.509 library (@peculiar/x509), set up once: certificates and CSRs of
 * any key type, signed through Node's native WebCrypto. node-forge, used
 * before, knows RSA only and does its ASN.1 in pure JavaScript.
 *
 * @module
 */
// The library's dependency injection needs the Reflect metadata API; it must be there before the library loads.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

// Node's own, rather than whatever a global `crypto` happens to be.
x509.cryptoProvider.set(webcrypto);

export { x509 };
