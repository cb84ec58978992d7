/** Checks of construct props; each error names the prop and the value. */

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function checkLabelName(prop: string, value: string): void {
  if (value.length > 63 || !DNS1123_LABEL.test(value)) {
    throw new Error(`${prop} must be a DNS-1123 label (lowercase letters, digits and '-', at most 63 characters), got ${JSON.stringify(value)}`);
  }
}

export function checkObjectName(prop: string, value: string): void {
  if (value.length > 253 || !DNS1123_SUBDOMAIN.test(value)) {
    throw new Error(`${prop} must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253 characters), got ${JSON.stringify(value)}`);
  }
}

export function checkInteger(prop: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${prop} must be an integer from ${min} to ${max}, got ${value}`);
  }
}

export function checkNonEmpty(prop: string, value: string): void {
  if (value.trim() === '') throw new Error(`${prop} must not be empty, got ${JSON.stringify(value)}`);
}

export function checkOneOf<T extends string>(prop: string, value: T, allowed: readonly T[]): void {
  if (!allowed.includes(value)) throw new Error(`${prop} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
}

const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

export function checkLabelKey(prop: string, value: string): void {
  if (!LABEL_KEY.test(value)) throw new Error(`${prop} must be a label key (an optional DNS prefix and "/", then at most 63 letters, digits, '-', '_' or '.'), got ${JSON.stringify(value)}`);
}
