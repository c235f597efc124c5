CREATE TABLE "supervision" (
	"id" integer PRIMARY KEY NOT NULL,
	"epoch" integer NOT NULL,
	"holder" jsonb NOT NULL,
	"acquired_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "task_events" ADD COLUMN "epoch" integer;--> statement-breakpoint
ALTER TABLE "task_events" ALTER COLUMN "epoch" SET DEFAULT nullif(current_setting('studio.epoch', true), '')::integer;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "folder" text;--> statement-breakpoint
-- Fencing: a studio connection names the supervision epoch it acts under (the studio.epoch
-- setting); a write to the task tables from an epoch that is not the current one is refused.
-- FOR SHARE holds the row until the writer commits, so a new supervisor's epoch bump waits for
-- writes already under way and every write after it sees the new epoch. Connections without
-- the setting (an operator's psql) are let through.
CREATE FUNCTION "studio_fence"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  mine integer := nullif(current_setting('studio.epoch', true), '')::integer;
  current_epoch integer;
BEGIN
  IF mine IS NULL THEN
    RETURN NULL;
  END IF;
  SELECT "epoch" INTO current_epoch FROM "supervision" WHERE "id" = 1 FOR SHARE;
  IF current_epoch IS DISTINCT FROM mine THEN
    RAISE EXCEPTION 'fenced: this studio acts under supervision epoch %, the current epoch is %', mine, coalesce(current_epoch::text, 'none')
      USING ERRCODE = 'FENCE';
  END IF;
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER "tasks_fence" BEFORE INSERT OR UPDATE OR DELETE ON "tasks" FOR EACH STATEMENT EXECUTE FUNCTION "studio_fence"();--> statement-breakpoint
CREATE TRIGGER "attempts_fence" BEFORE INSERT OR UPDATE OR DELETE ON "attempts" FOR EACH STATEMENT EXECUTE FUNCTION "studio_fence"();--> statement-breakpoint
CREATE TRIGGER "task_events_fence" BEFORE INSERT OR UPDATE OR DELETE ON "task_events" FOR EACH STATEMENT EXECUTE FUNCTION "studio_fence"();--> statement-breakpoint
CREATE TRIGGER "task_metrics_fence" BEFORE INSERT OR UPDATE OR DELETE ON "task_metrics" FOR EACH STATEMENT EXECUTE FUNCTION "studio_fence"();
