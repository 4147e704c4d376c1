import { z } from 'zod';

export const selectorQueryField = z
  .string()
  .max(4096)
  .optional()
  .describe('Kubernetes-style label selector, e.g. `role=web,env in (prod,staging),!canary,tier!=db`');
