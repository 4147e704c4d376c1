import { useEffect, useState } from 'preact/hooks';

/** Routes live in the fragment (#/rollouts/…): the API serves one page, and no route holds a secret. */
export function useRoute(): string[] {
  const read = () =>
    location.hash
      .replace(/^#\/?/, '')
      .split('/')
      .filter((part) => part !== '')
      .map((part) => decodeURIComponent(part));
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const update = () => {
      const next = read();
      setRoute((current) => (JSON.stringify(current) === JSON.stringify(next) ? current : next));
    };
    addEventListener('hashchange', update);
    // Effects run after the first paint, up to a frame after the route was read: a hash changed in
    // between (a link followed, or a URL entered, just as the page appeared) fired no event here.
    update();
    return () => removeEventListener('hashchange', update);
  }, []);
  return route;
}

export function href(...parts: string[]): string {
  return `#/${parts.map((part) => encodeURIComponent(part)).join('/')}`;
}

export function navigate(...parts: string[]): void {
  location.hash = href(...parts);
}
