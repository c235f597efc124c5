CREATE TABLE "notification_outbox" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"delivery_id" text NOT NULL,
	"task_id" text NOT NULL,
	"event_id" bigint NOT NULL,
	"payload" jsonb NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
CREATE UNIQUE INDEX "notification_outbox_delivery_idx" ON "notification_outbox" USING btree ("delivery_id");--> statement-breakpoint
CREATE INDEX "notification_outbox_due_idx" ON "notification_outbox" USING btree ("next_attempt_at","id") WHERE "notification_outbox"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "notification_outbox_status_idx" ON "notification_outbox" USING btree ("status","finished_at");--> statement-breakpoint
-- The outbox is written by the supervisor (rows go in with their event, the delivery loop marks
-- them): fenced like the task tables (migration 0003), so a studio that lost supervision cannot
-- mark a row another studio now delivers.
CREATE TRIGGER "notification_outbox_fence" BEFORE INSERT OR UPDATE OR DELETE ON "notification_outbox" FOR EACH STATEMENT EXECUTE FUNCTION "studio_fence"();
