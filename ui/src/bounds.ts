import { matchesSelector, matchesUnitGlob, parseSelector } from '@drover/protocol';
import { may, type Me } from './api';

/**
 * Whether the token may act on this unit of this host, by the API's own selector and glob code.
 * Only decides what the page offers; the API checks every request again.
 */
export function mayActOn(me: Me, labels: Record<string, string>, unit: string | null): boolean {
  if (!may(me, 'operate')) return false;
  if (me.hostSelector !== null && me.hostSelector !== '' && !matchesSelector(parseSelector(me.hostSelector), labels)) {
    return false;
  }
  if (me.unitGlob !== null) return unit !== null && matchesUnitGlob(me.unitGlob, unit);
  return true;
}
