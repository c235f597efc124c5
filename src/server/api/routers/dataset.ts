import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { DEFAULT_MAX_UPLOAD_BYTES } from "../../datasets/store";
import { noRoomReason } from "../../disk-space";
import { mutatingProcedure, publicProcedure, router } from "../trpc";

const datasetId = z.object({
  id: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[A-Za-z0-9_-]+$/, "a dataset id is letters, digits, '_' and '-'"),
});

/** Base64 of an upload at the size limit, plus padding. */
const MAX_BASE64_CHARS = Math.ceil(DEFAULT_MAX_UPLOAD_BYTES / 3) * 4 + 4;

export const datasetRouter = router({
  list: publicProcedure.query(({ ctx }) => ctx.datasets.list()),

  preview: publicProcedure
    .input(datasetId)
    .query(({ ctx, input }) => ctx.datasets.preview(input.id)),

  /** A JSONL or JSON file, sent as base64 so that bytes that are not UTF-8 are judged, not mangled. */
  upload: mutatingProcedure
    .input(
      z.object({
        fileName: z
          .string()
          .min(1)
          .max(255)
          .regex(/\.(jsonl|json)$/i, "upload a .jsonl or .json file"),
        contentBase64: z
          .string()
          .max(MAX_BASE64_CHARS, `uploads may be at most ${DEFAULT_MAX_UPLOAD_BYTES / 2 ** 20} MiB`)
          .regex(/^[A-Za-z0-9+/]*={0,2}$/, "the content is not base64"),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      const noRoom = await noRoomReason(ctx.env.STUDIO_HOME, ctx.env.STUDIO_MIN_FREE_MB);
      if (noRoom) throw new TRPCError({ code: "PRECONDITION_FAILED", message: noRoom });
      return ctx.datasets.saveUpload(input.fileName, Buffer.from(input.contentBase64, "base64"));
    }),

  /** A file already on this machine, inside one of the operator's STUDIO_DATASET_ROOTS. */
  register: mutatingProcedure
    .input(
      z.object({
        path: z
          .string()
          .min(1)
          .max(4096)
          .refine((p) => p.startsWith("/"), "give an absolute path"),
      }),
    )
    .mutation(({ ctx, input }) => ctx.datasets.registerPath(input.path)),
});
