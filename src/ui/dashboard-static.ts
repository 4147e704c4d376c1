import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { NextFunction, Request, Response } from 'express';

/** Where `npm run build` puts the dashboard (dist/ui, next to dist/src where this file runs). */
export const DASHBOARD_DIR = path.resolve(__dirname, '..', '..', 'ui');

/**
 * The dashboard's policy: its own scripts and styles only (no inline script or style, no eval),
 * requests to this origin only, no plugins, frames or form posts elsewhere, and Trusted Types
 * enforced so no string can become HTML or script even if a bug tried to. Hostile text from hosts
 * (unit names, descriptions, task output) can only ever be text.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

/**
 * Serves the built dashboard under /ui: a fixed set of files (nothing else of the disk is
 * reachable), each with the CSP above. Any other path under /ui/ gets index.html (the page routes
 * itself with the URL fragment). Public like /docs: the page holds no data; every API call it makes
 * carries the token the user signs in with.
 */
export function dashboardMiddleware(directory = DASHBOARD_DIR) {
  return (request: Request, response: Response, next: NextFunction): void => {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      next();
      return;
    }
    // Mounted at /ui: request.path is what follows it.
    if (request.originalUrl === '/ui' || request.originalUrl.startsWith('/ui?')) {
      response.redirect(301, '/ui/');
      return;
    }
    const requested = request.path.replace(/^\/+/, '');
    const file = Object.hasOwn(FILES, requested) ? requested : 'index.html';
    readFile(path.join(directory, file)).then(
      (body) => {
        response.status(200).set({
          'Content-Type': FILES[file],
          'Content-Security-Policy': DASHBOARD_CSP,
          'X-Content-Type-Options': 'nosniff',
          'X-Frame-Options': 'DENY',
          'Referrer-Policy': 'no-referrer',
          'Cross-Origin-Opener-Policy': 'same-origin',
          'Cache-Control': file === 'index.html' ? 'no-store' : 'no-cache',
        });
        response.end(request.method === 'HEAD' ? undefined : body);
      },
      () => {
        response
          .status(404)
          .type('text/plain')
          .set('Content-Security-Policy', DASHBOARD_CSP)
          .end('The dashboard is not built: run `npm run build` (it writes dist/ui).\n');
      },
    );
  };
}
