#pragma once

// better-auth's default schema (as its CLI generates it for PostgreSQL), for the tests that put a
// web application's users and sessions in a PostgreSQL database of the harness
// (unit/store/postgres_server.hpp) and point the bridge (src/auth/better_auth.hpp) at it.

namespace hearth::test {

inline constexpr const char* kBetterAuthDefaultSchema = R"sql(
CREATE TABLE "user" (
    "id" text PRIMARY KEY, "name" text NOT NULL, "email" text NOT NULL UNIQUE,
    "emailVerified" boolean NOT NULL DEFAULT false, "image" text,
    "createdAt" timestamptz NOT NULL DEFAULT now(), "updatedAt" timestamptz NOT NULL DEFAULT now());
CREATE TABLE "session" (
    "id" text PRIMARY KEY, "expiresAt" timestamptz NOT NULL, "token" text NOT NULL UNIQUE,
    "createdAt" timestamptz NOT NULL DEFAULT now(), "updatedAt" timestamptz NOT NULL DEFAULT now(),
    "ipAddress" text, "userAgent" text,
    "userId" text NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE);
)sql";

}  // namespace hearth::test
