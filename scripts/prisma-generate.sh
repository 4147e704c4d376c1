#!/usr/bin/env bash
# Generates the Prisma client into src/generated/prisma.
# `prisma generate` never runs the native schema engine, but Prisma 7 tries to download it first and
# fails where only the npm registry is reachable. Pointing PRISMA_SCHEMA_ENGINE_BINARY at any
# existing file skips that download (see README, "Database migrations").
set -euo pipefail
cd "$(dirname "$0")/.."
export PRISMA_SCHEMA_ENGINE_BINARY="${PRISMA_SCHEMA_ENGINE_BINARY:-$(type -P true)}"
exec npx --no-install prisma generate --no-hints
