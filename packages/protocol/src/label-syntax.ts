/**
 * Label keys and values follow Kubernetes' rules, so selectors written for kubectl read the same
 * here: a key is an optional DNS-subdomain prefix and '/' plus a name of at most 63 characters;
 * a value is empty or a name of at most 63 characters.
 */
const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Returns why `key` is not a valid label key, or null when it is. */
export function labelKeyProblem(key: string): string | null {
  const slash = key.indexOf('/');
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (slash !== -1) {
    const prefix = key.slice(0, slash);
    if (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)) {
      return `label key prefix '${prefix}' must be a lowercase DNS subdomain of at most 253 characters`;
    }
  }
  if (name.length === 0 || name.length > 63 || !NAME.test(name)) {
    return `label key '${key}' must be 1-63 characters [A-Za-z0-9-_.], starting and ending alphanumeric`;
  }
  return null;
}

/** Returns why `value` is not a valid label value, or null when it is. */
export function labelValueProblem(value: string): string | null {
  if (value === '') return null;
  if (value.length > 63 || !NAME.test(value)) {
    return `label value '${value}' must be at most 63 characters [A-Za-z0-9-_.], starting and ending alphanumeric`;
  }
  return null;
}
