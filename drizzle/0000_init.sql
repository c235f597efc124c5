CREATE TABLE "attempts" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"task_id" text NOT NULL,
	"number" integer NOT NULL,
	"executor" text DEFAULT 'local' NOT NULL,
	"handle" jsonb,
	"pid" integer,
	"process_start_time" text,
	"boot_id" text,
	"host" text NOT NULL,
	"gpus" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"resume_from" text,
	"log_cursor" jsonb,
	"progress_cursor" jsonb,
	"exit_code" integer,
	"signal" text,
	"error" text,
	"intent_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"ended_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "task_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"task_id" text NOT NULL,
	"attempt" integer,
	"type" text NOT NULL,
	"message" text DEFAULT '' NOT NULL,
	"data" jsonb,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "task_metrics" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"task_id" text NOT NULL,
	"attempt" integer NOT NULL,
	"step" integer NOT NULL,
	"epoch" double precision,
	"loss" double precision,
	"eval_loss" double precision,
	"learning_rate" double precision,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "tasks" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"model" text NOT NULL,
	"trainer" text NOT NULL,
	"mode" text DEFAULT 'lora' NOT NULL,
	"dataset_path" text NOT NULL,
	"dataset_format" text NOT NULL,
	"hyperparameters" jsonb NOT NULL,
	"command" jsonb,
	"gpus_requested" integer DEFAULT 0 NOT NULL,
	"status" text NOT NULL,
	"status_reason" text,
	"progress" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"queued_at" timestamp with time zone,
	"resume_from_checkpoint" boolean DEFAULT false NOT NULL,
	"last_checkpoint" text,
	"cancel_requested_at" timestamp with time zone,
	"current_attempt" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "attempts" ADD CONSTRAINT "attempts_task_id_tasks_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."tasks"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "task_events" ADD CONSTRAINT "task_events_task_id_tasks_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."tasks"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "task_metrics" ADD CONSTRAINT "task_metrics_task_id_tasks_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."tasks"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "attempts_task_number_idx" ON "attempts" USING btree ("task_id","number");--> statement-breakpoint
CREATE INDEX "attempts_open_idx" ON "attempts" USING btree ("task_id") WHERE "attempts"."ended_at" is null;--> statement-breakpoint
CREATE INDEX "task_events_task_idx" ON "task_events" USING btree ("task_id","id");--> statement-breakpoint
CREATE INDEX "task_metrics_task_step_idx" ON "task_metrics" USING btree ("task_id","step");--> statement-breakpoint
CREATE INDEX "tasks_created_idx" ON "tasks" USING btree ("created_at" DESC NULLS LAST,"id");--> statement-breakpoint
CREATE INDEX "tasks_status_created_idx" ON "tasks" USING btree ("status","created_at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "tasks_active_idx" ON "tasks" USING btree ("status","queued_at") WHERE "tasks"."status" in ('queued', 'preparing', 'training', 'paused');