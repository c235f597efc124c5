import type { StudioCondition } from "../server/studio-condition";

export type { StudioCondition };

export interface ConditionBanner {
  id: "database" | "disk";
  /** "error": something does not work now; "warning": it will soon. */
  tone: "error" | "warning";
  /** The i18n key of the text, and its values. */
  key: string;
  values: Record<string, string | number | Date>;
  /** The cause in the words of the database or the system, shown under the text. */
  detail?: string;
}

const MiB = 1024 * 1024;

/**
 * The banners a condition calls for (pure): a failing database (since when, retrying), a disk
 * nearing the floor (launches stop below it), a disk under it.
 */
export function conditionBanners(condition: StudioCondition): ConditionBanner[] {
  const banners: ConditionBanner[] = [];
  const { database, disk } = condition;
  if (database.status === "failing") {
    banners.push({
      id: "database",
      tone: "error",
      key: database.kind === "disk-full" ? "condition.databaseDiskFull" : "condition.databaseDown",
      values: { since: database.since },
      detail: database.message,
    });
  }
  if (disk && disk.verdict !== "ok") {
    banners.push({
      id: "disk",
      tone: disk.verdict === "full" ? "error" : "warning",
      key: disk.verdict === "full" ? "condition.diskFull" : "condition.diskLow",
      values: {
        free: Math.floor(disk.freeBytes / MiB),
        path: disk.path,
        floor: Math.round(disk.floorBytes / MiB),
      },
    });
  }
  return banners;
}
