import { defineConfig } from 'prisma/config';

// Prisma CLI configuration. `prisma generate` needs no database; `prisma migrate deploy`
// (for users whose machines reach Prisma's engine downloads) reads DATABASE_URL.
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/drover' },
});
