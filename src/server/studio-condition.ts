import type { DatabaseHealthState } from "./db/health";
import { type DiskSpace, diskSpace } from "./disk-space";
import type { StudioServices } from "./services";

/**
 * What the page warns about, none of it read from the database: whether database calls work
 * (./db/health.ts) and the free space against the floor (./disk-space.ts).
 */
export interface StudioCondition {
  database: DatabaseHealthState;
  /** Null when the free space cannot be read. */
  disk: DiskSpace | null;
}

const MiB = 1024 * 1024;

export async function studioCondition(services: StudioServices): Promise<StudioCondition> {
  return {
    database: services.database.health.state,
    disk: await diskSpace(services.env.STUDIO_HOME, services.env.STUDIO_MIN_FREE_MB).catch(
      () => null,
    ),
  };
}

/**
 * Whether the page would show something different: a change of health, of verdict, or of a
 * whole MB free. Pure.
 */
export function conditionKey(condition: StudioCondition): string {
  const { database: db, disk } = condition;
  return JSON.stringify([
    db.status === "ok" ? "ok" : [db.kind, db.message, db.since.getTime()],
    disk && [disk.path, disk.verdict, Math.floor(disk.freeBytes / MiB), disk.floorBytes],
  ]);
}
