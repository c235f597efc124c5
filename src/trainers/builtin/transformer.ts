import { type AttentionShape, attentionScratch } from "./attention";
import type { KernelPool } from "./kernel-pool";
import { crossEntropy, layerNormBackward, layerNormForward } from "./layers";
import type { LinearAlgebra } from "./linalg";
import { loraWeightName } from "./lora";
import type { ModelConfig } from "./model";
import type { Rng } from "./rng";
import type { Arena, Buf } from "./wasm-kernels";

/**
 * The model of model.ts, forward and backward, written out by hand over buffers in the
 * kernels' memory: the passes a generic autodiff library would derive, without its per-op
 * allocations and generic strides. Products and attention run on the kernel pool's threads.
 */

/** The adapters to apply: `scale` = alpha / r; `dropout` with a generator while training. */
export interface LoraPass {
  rank: number;
  scale: number;
  dropout: number;
  dropoutRng: Rng | null;
}

export interface TokenBatch {
  ids: Int32Array;
  batch: number;
  time: number;
}

interface LoraSaved {
  z: Buf;
  mask: Buf | null;
  t: Buf;
}

interface NormSaved {
  y: Buf;
  xhat: Buf;
  rstd: Buf;
}

interface LayerSaved {
  ln1: NormSaved;
  q: Buf;
  k: Buf;
  v: Buf;
  probs: Buf;
  att: Buf;
  ln2: NormSaved;
  up: Buf;
}

interface ForwardState {
  n: number;
  layers: LayerSaved[];
  final: NormSaved;
  logits: Buf;
  lora: Map<string, LoraSaved>;
}

export class Transformer {
  private readonly weights = new Map<string, Buf>();

  constructor(
    readonly config: ModelConfig,
    private readonly arena: Arena,
    private readonly la: LinearAlgebra,
    private readonly pool: KernelPool,
  ) {}

  /** Copies `data` in as weight `name`; a new name is allocated, so call between passes. */
  setWeight(name: string, data: Float32Array): void {
    let buf = this.weights.get(name);
    if (!buf) {
      buf = this.arena.alloc(data.length);
      this.weights.set(name, buf);
    }
    if (buf.data.length !== data.length) throw new Error(`weight ${name} changed its size`);
    buf.data.set(data);
  }

  hasWeight(name: string): boolean {
    return this.weights.has(name);
  }

  /** Logits [batch·time, vocab] (a copy). */
  logits(input: TokenBatch, lora: LoraPass | null): Float32Array {
    return this.scoped(() => Float32Array.from(this.forward(input, lora).logits.data));
  }

  /** Σ of token cross-entropies against `targets` (−1: not counted). */
  lossSum(input: TokenBatch, targets: Int32Array, lora: LoraPass | null): number {
    return this.scoped(() => {
      const state = this.forward(input, lora);
      return crossEntropy(state.logits.data, targets, state.n, this.config.vocabSize, null, 1);
    });
  }

  /**
   * The loss Σ/`tokenCount` and its gradients with respect to the weights `trained` names (the
   * adapters, or every weight when pretraining).
   */
  lossAndGradients(
    input: TokenBatch,
    targets: Int32Array,
    tokenCount: number,
    lora: LoraPass | null,
    trained: string[],
  ): { loss: number; grads: Map<string, Float32Array> } {
    return this.scoped(() => {
      const state = this.forward(input, lora);
      const { vocabSize } = this.config;
      const dLogits = this.arena.alloc(state.n * vocabSize);
      const lossSum = crossEntropy(
        state.logits.data,
        targets,
        state.n,
        vocabSize,
        dLogits.data,
        1 / tokenCount,
      );
      const grads = new Map<string, Buf>();
      for (const name of trained) {
        const weight = this.weights.get(name);
        if (!weight) throw new Error(`no weight ${name} to train`);
        grads.set(name, this.arena.zeros(weight.data.length));
      }
      this.backward(input, state, dLogits, lora, grads);
      const out = new Map<string, Float32Array>();
      for (const [name, buf] of grads) out.set(name, Float32Array.from(buf.data));
      return { loss: lossSum / tokenCount, grads: out };
    });
  }

  /** Runs `body` with the arena's temporaries released afterwards. */
  private scoped<T>(body: () => T): T {
    const top = this.arena.top;
    try {
      return body();
    } finally {
      this.arena.reset(top);
    }
  }

  private weight(name: string): Buf {
    const buf = this.weights.get(name);
    if (!buf) throw new Error(`model weight ${name} is missing`);
    return buf;
  }

  private norm(x: Buf, prefix: string, n: number): NormSaved {
    const d = this.config.dModel;
    const saved = {
      y: this.arena.alloc(n * d),
      xhat: this.arena.alloc(n * d),
      rstd: this.arena.alloc(n),
    };
    layerNormForward(
      x.data,
      this.weight(`${prefix}.weight`).data,
      this.weight(`${prefix}.bias`).data,
      saved.y.data,
      saved.xhat.data,
      saved.rstd.data,
      n,
      d,
    );
    return saved;
  }

  private forward(input: TokenBatch, lora: LoraPass | null): ForwardState {
    const { dModel: d, nHeads, dFF, vocabSize } = this.config;
    const { ids, batch, time } = input;
    if (time > this.config.contextLength) {
      throw new Error(`a sequence of ${time} exceeds the context of ${this.config.contextLength}`);
    }
    const n = batch * time;
    const loraSaved = new Map<string, LoraSaved>();
    const tokens = this.weight("model.embed_tokens.weight").data;
    const positions = this.weight("model.embed_positions.weight").data;
    let x = this.arena.alloc(n * d);
    for (let row = 0; row < n; row++) {
      const id = ids[row]!;
      if (id < 0 || id >= vocabSize) throw new Error(`token id ${id} is outside the vocabulary`);
      const t = row % time;
      for (let c = 0; c < d; c++) x.data[row * d + c] = tokens[id * d + c]! + positions[t * d + c]!;
    }
    const layers: LayerSaved[] = [];
    const headDim = d / nHeads;
    const qScale = 1 / Math.sqrt(headDim);
    for (let layer = 0; layer < this.config.nLayers; layer++) {
      const prefix = `model.layers.${layer}`;
      const ln1 = this.norm(x, `${prefix}.input_layernorm`, n);
      const linear = (module: string, inp: Buf, inDim: number, outDim: number) =>
        this.linear(`${prefix}.${module}`, inp, inDim, outDim, n, lora, loraSaved);
      const q = linear("self_attn.q_proj", ln1.y, d, d);
      for (let i = 0; i < q.data.length; i++) q.data[i] = q.data[i]! * qScale;
      const k = linear("self_attn.k_proj", ln1.y, d, d);
      const v = linear("self_attn.v_proj", ln1.y, d, d);
      const { probs, att } = this.attention(q, k, v, batch, time);
      const o = linear("self_attn.o_proj", att, d, d);
      const mid = this.arena.alloc(n * d);
      this.pool.elementwise.add_scaled(mid.ptr, x.ptr, o.ptr, 1, n * d);
      const ln2 = this.norm(mid, `${prefix}.post_attention_layernorm`, n);
      const up = linear("mlp.up_proj", ln2.y, d, dFF);
      this.pool.elementwise.relu(up.ptr, up.data.length);
      const down = linear("mlp.down_proj", up, dFF, d);
      const next = this.arena.alloc(n * d);
      this.pool.elementwise.add_scaled(next.ptr, mid.ptr, down.ptr, 1, n * d);
      layers.push({ ln1, q, k, v, probs, att, ln2, up });
      x = next;
    }
    const final = this.norm(x, "model.norm", n);
    const logits = this.arena.alloc(n * vocabSize);
    this.la.mmTB(logits, final.y, this.weight("model.embed_tokens.weight"), n, vocabSize, d);
    return { n, layers, final, logits, lora: loraSaved };
  }

  /** y = x·Wᵀ, plus (alpha/r)·(dropout(x)·Aᵀ)·Bᵀ where the module has an adapter. */
  private linear(
    module: string,
    x: Buf,
    inDim: number,
    outDim: number,
    n: number,
    lora: LoraPass | null,
    saved: Map<string, LoraSaved>,
  ): Buf {
    const y = this.arena.alloc(n * outDim);
    this.la.mmTB(y, x, this.weight(`${module}.weight`), n, outDim, inDim);
    const a = lora && this.weights.get(loraWeightName(module, "A"));
    if (!lora || !a) return y;
    const b = this.weight(loraWeightName(module, "B"));
    let z = x;
    let mask: Buf | null = null;
    if (lora.dropoutRng && lora.dropout > 0) {
      // Drawn in the order the positions are laid out, module by module, as before the rewrite.
      const keep = 1 - lora.dropout;
      const kept = 1 / keep;
      mask = this.arena.alloc(n * inDim);
      const m = mask.data;
      for (let i = 0; i < m.length; i++) m[i] = lora.dropoutRng.next() < keep ? kept : 0;
      z = this.arena.alloc(n * inDim);
      this.pool.elementwise.mul(z.ptr, x.ptr, mask.ptr, n * inDim);
    }
    const t = this.arena.alloc(n * lora.rank);
    this.la.mmTB(t, z, a, n, lora.rank, inDim);
    const delta = this.arena.alloc(n * outDim);
    this.la.mmTB(delta, t, b, n, outDim, lora.rank);
    this.pool.elementwise.add_scaled(y.ptr, y.ptr, delta.ptr, lora.scale, n * outDim);
    saved.set(module, { z, mask, t });
    return y;
  }

  private attention(q: Buf, k: Buf, v: Buf, batch: number, time: number) {
    const shape: AttentionShape = {
      batch,
      time,
      dModel: this.config.dModel,
      nHeads: this.config.nHeads,
    };
    const probs = this.arena.alloc(batch * shape.nHeads * time * time);
    const att = this.arena.alloc(batch * time * shape.dModel);
    const perThread = attentionScratch(shape, false);
    const scratch = this.arena.alloc(perThread * this.pool.threads);
    const ptrs = { q: q.ptr, k: k.ptr, v: v.ptr, probs: probs.ptr, att: att.ptr };
    this.pool.attention(false, shape, ptrs, scratch.ptr, perThread);
    return { probs, att };
  }

  private backward(
    input: TokenBatch,
    state: ForwardState,
    dLogits: Buf,
    lora: LoraPass | null,
    grads: Map<string, Buf>,
  ): void {
    const { dModel: d, dFF, vocabSize, nHeads } = this.config;
    const { n } = state;
    const arena = this.arena;
    const embed = this.weight("model.embed_tokens.weight");
    const dFinal = arena.alloc(n * d);
    this.la.mm(dFinal, dLogits, embed, n, d, vocabSize);
    const dEmbed = grads.get("model.embed_tokens.weight");
    if (dEmbed) this.la.mmTA(dEmbed, dLogits, state.final.y, vocabSize, d, n, true);
    const dx = arena.zeros(n * d);
    this.normBackward("model.norm", dFinal, state.final, dx, grads, n);
    const qScale = 1 / Math.sqrt(d / nHeads);
    for (let layer = this.config.nLayers - 1; layer >= 0; layer--) {
      const prefix = `model.layers.${layer}`;
      const saved = state.layers[layer]!;
      const linearBackward = (
        module: string,
        x: Buf,
        dy: Buf,
        dIn: Buf,
        inDim: number,
        outDim: number,
        accumulate: boolean,
      ) =>
        this.linearBackward(
          `${prefix}.${module}`,
          x,
          dy,
          dIn,
          inDim,
          outDim,
          n,
          accumulate,
          lora,
          state.lora,
          grads,
        );
      const dUp = arena.alloc(n * dFF);
      linearBackward("mlp.down_proj", saved.up, dx, dUp, dFF, d, false);
      this.pool.elementwise.relu_backward(dUp.ptr, saved.up.ptr, n * dFF);
      const dH2 = arena.alloc(n * d);
      linearBackward("mlp.up_proj", saved.ln2.y, dUp, dH2, d, dFF, false);
      this.normBackward(`${prefix}.post_attention_layernorm`, dH2, saved.ln2, dx, grads, n);
      const dAtt = arena.alloc(n * d);
      linearBackward("self_attn.o_proj", saved.att, dx, dAtt, d, d, false);
      const { dq, dk, dv } = this.attentionBackward(saved, dAtt, input.batch, input.time);
      for (let i = 0; i < dq.data.length; i++) dq.data[i] = dq.data[i]! * qScale;
      const dH = arena.alloc(n * d);
      linearBackward("self_attn.q_proj", saved.ln1.y, dq, dH, d, d, false);
      linearBackward("self_attn.k_proj", saved.ln1.y, dk, dH, d, d, true);
      linearBackward("self_attn.v_proj", saved.ln1.y, dv, dH, d, d, true);
      this.normBackward(`${prefix}.input_layernorm`, dH, saved.ln1, dx, grads, n);
    }
    const dTokens = grads.get("model.embed_tokens.weight");
    const dPositions = grads.get("model.embed_positions.weight");
    if (dTokens || dPositions) {
      for (let row = 0; row < n; row++) {
        const id = input.ids[row]!;
        const t = row % input.time;
        for (let c = 0; c < d; c++) {
          const g = dx.data[row * d + c]!;
          if (dTokens) dTokens.data[id * d + c] = dTokens.data[id * d + c]! + g;
          if (dPositions) dPositions.data[t * d + c] = dPositions.data[t * d + c]! + g;
        }
      }
    }
  }

  private normBackward(
    prefix: string,
    dy: Buf,
    saved: NormSaved,
    dx: Buf,
    grads: Map<string, Buf>,
    n: number,
  ): void {
    layerNormBackward(
      dy.data,
      saved.xhat.data,
      saved.rstd.data,
      this.weight(`${prefix}.weight`).data,
      dx.data,
      grads.get(`${prefix}.weight`)?.data ?? null,
      grads.get(`${prefix}.bias`)?.data ?? null,
      n,
      this.config.dModel,
    );
  }

  /** dIn (+)= dy·W and the trained weights' gradients, through the adapter where there is one. */
  private linearBackward(
    module: string,
    x: Buf,
    dy: Buf,
    dIn: Buf,
    inDim: number,
    outDim: number,
    n: number,
    accumulate: boolean,
    lora: LoraPass | null,
    loraSaved: Map<string, LoraSaved>,
    grads: Map<string, Buf>,
  ): void {
    const weightName = `${module}.weight`;
    this.la.mm(dIn, dy, this.weight(weightName), n, inDim, outDim, accumulate);
    const dW = grads.get(weightName);
    if (dW) this.la.mmTA(dW, dy, x, outDim, inDim, n, true);
    const saved = loraSaved.get(module);
    if (!lora || !saved) return;
    const aName = loraWeightName(module, "A");
    const bName = loraWeightName(module, "B");
    const dDelta = this.arena.alloc(n * outDim);
    for (let i = 0; i < dDelta.data.length; i++) dDelta.data[i] = dy.data[i]! * lora.scale;
    const dB = grads.get(bName);
    if (dB) this.la.mmTA(dB, dDelta, saved.t, outDim, lora.rank, n, true);
    const dt = this.arena.alloc(n * lora.rank);
    this.la.mm(dt, dDelta, this.weight(bName), n, lora.rank, outDim);
    const dA = grads.get(aName);
    if (dA) this.la.mmTA(dA, dt, saved.z, lora.rank, inDim, n, true);
    const dz = this.arena.alloc(n * inDim);
    this.la.mm(dz, dt, this.weight(aName), n, inDim, lora.rank);
    if (saved.mask) this.pool.elementwise.mul(dz.ptr, dz.ptr, saved.mask.ptr, n * inDim);
    this.pool.elementwise.add_scaled(dIn.ptr, dIn.ptr, dz.ptr, 1, n * inDim);
  }

  private attentionBackward(saved: LayerSaved, dAtt: Buf, batch: number, time: number) {
    const shape: AttentionShape = {
      batch,
      time,
      dModel: this.config.dModel,
      nHeads: this.config.nHeads,
    };
    const n = batch * time * shape.dModel;
    const dq = this.arena.alloc(n);
    const dk = this.arena.alloc(n);
    const dv = this.arena.alloc(n);
    const perThread = attentionScratch(shape, true);
    const scratch = this.arena.alloc(perThread * this.pool.threads);
    const { q, k, v, probs, att } = saved;
    this.pool.attention(
      true,
      shape,
      {
        q: q.ptr,
        k: k.ptr,
        v: v.ptr,
        probs: probs.ptr,
        att: att.ptr,
        dAtt: dAtt.ptr,
        dq: dq.ptr,
        dk: dk.ptr,
        dv: dv.ptr,
      },
      scratch.ptr,
      perThread,
    );
    return { dq, dk, dv };
  }
}
