/**
 * The wire types generated from `spec/` (openapi-typescript), as the facade modules and `src/index.ts` use them.
 * Only `src/core/`, `src/internal/` and `src/server/` import `generated/` directly (lint enforces it).
 *
 * @example
 * ```ts
 * type Checkpoint = components["schemas"]["Checkpoint"];
 * type ListRuns = paths["/api/v1/training_runs"]["get"];
 * ```
 *
 * @module
 */
export type { components, paths } from "../../generated/schema.js";
