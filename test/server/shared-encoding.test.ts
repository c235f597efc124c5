import superjson from "superjson";
import { describe, expect, it } from "vitest";
import { sentToAll, studioTransformer } from "../../src/server/api/shared-encoding";

const { serialize, deserialize } = studioTransformer.output;

describe("one encoding of a value sent to every subscriber", () => {
  it("serializes a marked value once, and as superjson does", () => {
    const chunk = sentToAll([
      { offset: 0, text: "line 1" },
      { offset: 7, text: "line 2", at: new Date(5) },
    ]);
    const first = serialize(chunk);
    expect(serialize(chunk)).toBe(first); // the same object: walked once
    expect(first).toEqual(superjson.serialize(chunk));
    expect(deserialize(JSON.parse(JSON.stringify(first)))).toEqual(chunk);
  });

  it("serializes an unmarked value afresh each time", () => {
    const rows = [{ at: new Date(1) }];
    const first = serialize(rows);
    expect(serialize(rows)).not.toBe(first);
    expect(first).toEqual(superjson.serialize(rows));
    expect(serialize("text")).toEqual(superjson.serialize("text"));
    expect(serialize(null)).toEqual(superjson.serialize(null));
  });
});
