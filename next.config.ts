import type { NextConfig } from "next";

const nextConfig: NextConfig = {
  // The page reaches the database only through tRPC; keep native and WASM database drivers
  // out of the bundle should an import ever pull one in by mistake.
  serverExternalPackages: ["@electric-sql/pglite", "postgres"],
  // `npm run check` type-checks the whole project (page included, with Next's generated route
  // types) in one `tsc` pass; repeating it inside `next build` would only slow the build down.
  typescript: { ignoreBuildErrors: true },
  poweredByHeader: false,
  reactStrictMode: true,
};

export default nextConfig;
