ALTER TABLE "task_metrics" ADD COLUMN "kind" text DEFAULT 'train' NOT NULL;--> statement-breakpoint
-- Rows written before this migration: an eval row is one that carries only an eval loss.
UPDATE "task_metrics" SET "kind" = 'eval' WHERE "eval_loss" IS NOT NULL AND "loss" IS NULL AND "learning_rate" IS NULL;--> statement-breakpoint
-- Re-read lines could store a step twice before writes were idempotent: keep the latest row of each.
DELETE FROM "task_metrics" a USING "task_metrics" b WHERE a."task_id" = b."task_id" AND a."attempt" = b."attempt" AND a."step" = b."step" AND a."kind" = b."kind" AND a."id" < b."id";--> statement-breakpoint
CREATE UNIQUE INDEX "task_metrics_task_attempt_step_kind_idx" ON "task_metrics" USING btree ("task_id","attempt","step","kind");
