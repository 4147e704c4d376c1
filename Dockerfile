# drover control plane image: the API and the worker are the same build with different commands.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The workspace packages' manifests, so npm links them (their code comes with COPY . . below).
COPY packages/protocol/package.json packages/protocol/
COPY packages/systemd/package.json packages/systemd/
# npm install from the lock rather than npm ci: see ensure_build in scripts/lib/stack.sh.
RUN npm install --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/packages ./packages
COPY --from=build /app/prisma ./prisma
COPY --from=build /app/package.json ./package.json
USER node
EXPOSE 8080
CMD ["node", "dist/src/main.js"]
