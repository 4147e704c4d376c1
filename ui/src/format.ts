/** Durations as people read them: 850 ms, 12 s, 3 min 4 s, 2 h 5 min. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function time(iso: string | null | undefined): string {
  if (!iso) return '–';
  const date = new Date(iso);
  return `${date.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

export function since(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  return `${duration(now - Date.parse(iso))} ago`;
}
