;; The built-in trainer's matrix product in WebAssembly SIMD, written by hand and assembled at
;; build time (scripts/build-node.mjs, with wabt) into dist/builtin-kernels.wasm. Hand-written
;; because no maintained npm package trains with WASM SIMD on Node: tfjs's WASM backend has no
;; gradients of its own and its CPU backend is scalar JavaScript.
;;
;; One kernel serves the three products a transformer's passes need (A·B, Aᵀ·B and, after a
;; transpose, A·Bᵀ): A is read through two strides, so either of its layouts is a plain
;; argument. Every output is the same sequence of float operations wherever it lies (a 4×8
;; vector tile or a scalar edge): s = 0, then s = s + a·b for p = 0…k−1, then c = c + s when
;; accumulating. So a result never depends on how the outputs are tiled or split among threads.
;; The element-wise kernels below replace JavaScript loops whose data-dependent branches (ReLU)
;; or per-element overhead showed in profiles; vector lanes and the scalar tail compute alike.
(module
  (import "env" "memory" (memory 1 16384 shared))

  ;; Σ_p A(row, p)·B(p, col), scalar; a and b point at A(row, 0) and B(0, col).
  (func $dot (param $a i32) (param $sap4 i32) (param $b i32) (param $ldb4 i32) (param $k i32)
    (result f32)
    (local $s f32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $k)))
        (local.set $s
          (f32.add (local.get $s) (f32.mul (f32.load (local.get $a)) (f32.load (local.get $b)))))
        (local.set $a (i32.add (local.get $a) (local.get $sap4)))
        (local.set $b (i32.add (local.get $b) (local.get $ldb4)))
        (local.set $k (i32.sub (local.get $k) (i32.const 1)))
        (br $next)))
    (local.get $s))

  ;; C(i, j) for j in [j, n) of one row, scalar.
  (func $row_tail
    (param $i i32) (param $j i32) (param $n i32) (param $k i32)
    (param $a i32) (param $sai4 i32) (param $sap4 i32)
    (param $b i32) (param $ldb4 i32) (param $c i32) (param $ldc4 i32) (param $acc i32)
    (local $cp i32) (local $s f32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $s
          (call $dot
            (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $sai4)))
            (local.get $sap4)
            (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2)))
            (local.get $ldb4)
            (local.get $k)))
        (local.set $cp
          (i32.add (local.get $c)
            (i32.add (i32.mul (local.get $i) (local.get $ldc4)) (i32.shl (local.get $j) (i32.const 2)))))
        (if (local.get $acc)
          (then (local.set $s (f32.add (f32.load (local.get $cp)) (local.get $s)))))
        (f32.store (local.get $cp) (local.get $s))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $next))))

  ;; C = A·B (acc = 0) or C = C + A·B (acc = 1) for rows [i0, i1) of C, where
  ;; A(i, p) = a[i·sai + p·sap], B(p, j) = b[p·ldb + j], C(i, j) = c[i·ldc + j];
  ;; pointers are byte offsets into memory, strides counted in floats.
  (func (export "gemm")
    (param $i0 i32) (param $i1 i32) (param $n i32) (param $k i32)
    (param $a i32) (param $sai i32) (param $sap i32)
    (param $b i32) (param $ldb i32) (param $c i32) (param $ldc i32) (param $acc i32)
    (local $i i32) (local $j i32) (local $p i32)
    (local $sai4 i32) (local $sap4 i32) (local $ldb4 i32) (local $ldc4 i32)
    (local $ap i32) (local $bp i32) (local $cp i32)
    (local $x v128) (local $b0 v128) (local $b1 v128)
    (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128)
    (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
    (local.set $sai4 (i32.shl (local.get $sai) (i32.const 2)))
    (local.set $sap4 (i32.shl (local.get $sap) (i32.const 2)))
    (local.set $ldb4 (i32.shl (local.get $ldb) (i32.const 2)))
    (local.set $ldc4 (i32.shl (local.get $ldc) (i32.const 2)))
    (local.set $i (local.get $i0))
    ;; Four rows at a time.
    (block $rows_done
      (loop $rows
        (br_if $rows_done (i32.gt_u (i32.add (local.get $i) (i32.const 4)) (local.get $i1)))
        (local.set $j (i32.const 0))
        (block $cols_done
          (loop $cols
            (br_if $cols_done (i32.gt_u (i32.add (local.get $j) (i32.const 8)) (local.get $n)))
            (local.set $c00 (v128.const i32x4 0 0 0 0))
            (local.set $c01 (v128.const i32x4 0 0 0 0))
            (local.set $c10 (v128.const i32x4 0 0 0 0))
            (local.set $c11 (v128.const i32x4 0 0 0 0))
            (local.set $c20 (v128.const i32x4 0 0 0 0))
            (local.set $c21 (v128.const i32x4 0 0 0 0))
            (local.set $c30 (v128.const i32x4 0 0 0 0))
            (local.set $c31 (v128.const i32x4 0 0 0 0))
            (local.set $ap (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $sai4))))
            (local.set $bp (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2))))
            (local.set $p (local.get $k))
            (block $k_done
              (loop $ks
                (br_if $k_done (i32.eqz (local.get $p)))
                (local.set $b0 (v128.load (local.get $bp)))
                (local.set $b1 (v128.load offset=16 (local.get $bp)))
                (local.set $x (f32x4.splat (f32.load (local.get $ap))))
                (local.set $c00 (f32x4.add (local.get $c00) (f32x4.mul (local.get $x) (local.get $b0))))
                (local.set $c01 (f32x4.add (local.get $c01) (f32x4.mul (local.get $x) (local.get $b1))))
                (local.set $x
                  (f32x4.splat (f32.load (i32.add (local.get $ap) (local.get $sai4)))))
                (local.set $c10 (f32x4.add (local.get $c10) (f32x4.mul (local.get $x) (local.get $b0))))
                (local.set $c11 (f32x4.add (local.get $c11) (f32x4.mul (local.get $x) (local.get $b1))))
                (local.set $x
                  (f32x4.splat
                    (f32.load (i32.add (local.get $ap) (i32.shl (local.get $sai4) (i32.const 1))))))
                (local.set $c20 (f32x4.add (local.get $c20) (f32x4.mul (local.get $x) (local.get $b0))))
                (local.set $c21 (f32x4.add (local.get $c21) (f32x4.mul (local.get $x) (local.get $b1))))
                (local.set $x
                  (f32x4.splat
                    (f32.load
                      (i32.add (local.get $ap) (i32.mul (local.get $sai4) (i32.const 3))))))
                (local.set $c30 (f32x4.add (local.get $c30) (f32x4.mul (local.get $x) (local.get $b0))))
                (local.set $c31 (f32x4.add (local.get $c31) (f32x4.mul (local.get $x) (local.get $b1))))
                (local.set $ap (i32.add (local.get $ap) (local.get $sap4)))
                (local.set $bp (i32.add (local.get $bp) (local.get $ldb4)))
                (local.set $p (i32.sub (local.get $p) (i32.const 1)))
                (br $ks)))
            (local.set $cp
              (i32.add (local.get $c)
                (i32.add (i32.mul (local.get $i) (local.get $ldc4))
                  (i32.shl (local.get $j) (i32.const 2)))))
            (if (local.get $acc)
              (then
                (local.set $c00 (f32x4.add (v128.load (local.get $cp)) (local.get $c00)))
                (local.set $c01 (f32x4.add (v128.load offset=16 (local.get $cp)) (local.get $c01)))))
            (v128.store (local.get $cp) (local.get $c00))
            (v128.store offset=16 (local.get $cp) (local.get $c01))
            (local.set $cp (i32.add (local.get $cp) (local.get $ldc4)))
            (if (local.get $acc)
              (then
                (local.set $c10 (f32x4.add (v128.load (local.get $cp)) (local.get $c10)))
                (local.set $c11 (f32x4.add (v128.load offset=16 (local.get $cp)) (local.get $c11)))))
            (v128.store (local.get $cp) (local.get $c10))
            (v128.store offset=16 (local.get $cp) (local.get $c11))
            (local.set $cp (i32.add (local.get $cp) (local.get $ldc4)))
            (if (local.get $acc)
              (then
                (local.set $c20 (f32x4.add (v128.load (local.get $cp)) (local.get $c20)))
                (local.set $c21 (f32x4.add (v128.load offset=16 (local.get $cp)) (local.get $c21)))))
            (v128.store (local.get $cp) (local.get $c20))
            (v128.store offset=16 (local.get $cp) (local.get $c21))
            (local.set $cp (i32.add (local.get $cp) (local.get $ldc4)))
            (if (local.get $acc)
              (then
                (local.set $c30 (f32x4.add (v128.load (local.get $cp)) (local.get $c30)))
                (local.set $c31 (f32x4.add (v128.load offset=16 (local.get $cp)) (local.get $c31)))))
            (v128.store (local.get $cp) (local.get $c30))
            (v128.store offset=16 (local.get $cp) (local.get $c31))
            (local.set $j (i32.add (local.get $j) (i32.const 8)))
            (br $cols)))
        ;; The last n mod 8 columns of these four rows.
        (call $row_tail (local.get $i) (local.get $j) (local.get $n) (local.get $k)
          (local.get $a) (local.get $sai4) (local.get $sap4) (local.get $b) (local.get $ldb4)
          (local.get $c) (local.get $ldc4) (local.get $acc))
        (call $row_tail (i32.add (local.get $i) (i32.const 1)) (local.get $j) (local.get $n)
          (local.get $k) (local.get $a) (local.get $sai4) (local.get $sap4) (local.get $b)
          (local.get $ldb4) (local.get $c) (local.get $ldc4) (local.get $acc))
        (call $row_tail (i32.add (local.get $i) (i32.const 2)) (local.get $j) (local.get $n)
          (local.get $k) (local.get $a) (local.get $sai4) (local.get $sap4) (local.get $b)
          (local.get $ldb4) (local.get $c) (local.get $ldc4) (local.get $acc))
        (call $row_tail (i32.add (local.get $i) (i32.const 3)) (local.get $j) (local.get $n)
          (local.get $k) (local.get $a) (local.get $sai4) (local.get $sap4) (local.get $b)
          (local.get $ldb4) (local.get $c) (local.get $ldc4) (local.get $acc))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $rows)))
    ;; The last rows, fewer than four.
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $i) (local.get $i1)))
        (call $row_tail (local.get $i) (i32.const 0) (local.get $n) (local.get $k)
          (local.get $a) (local.get $sai4) (local.get $sap4) (local.get $b) (local.get $ldb4)
          (local.get $c) (local.get $ldc4) (local.get $acc))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail))))
;; x = max(x, 0) over n floats at x (NaN stays NaN, as in max).
  (func (export "relu") (param $x i32) (param $n i32)
    (block $done
      (loop $vec
        (br_if $done (i32.lt_u (local.get $n) (i32.const 4)))
        (v128.store (local.get $x)
          (f32x4.max (v128.load (local.get $x)) (v128.const f32x4 0 0 0 0)))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (local.set $n (i32.sub (local.get $n) (i32.const 4)))
        (br $vec)))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.eqz (local.get $n)))
        (f32.store (local.get $x) (f32.max (f32.load (local.get $x)) (f32.const 0)))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $tail))))

  ;; dy = dy where y > 0, else 0, over n floats (y: ReLU's output).
  (func (export "relu_backward") (param $dy i32) (param $y i32) (param $n i32)
    (block $done
      (loop $vec
        (br_if $done (i32.lt_u (local.get $n) (i32.const 4)))
        (v128.store (local.get $dy)
          (v128.and (v128.load (local.get $dy))
            (f32x4.gt (v128.load (local.get $y)) (v128.const f32x4 0 0 0 0))))
        (local.set $dy (i32.add (local.get $dy) (i32.const 16)))
        (local.set $y (i32.add (local.get $y) (i32.const 16)))
        (local.set $n (i32.sub (local.get $n) (i32.const 4)))
        (br $vec)))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.eqz (local.get $n)))
        (if (i32.eqz (f32.gt (f32.load (local.get $y)) (f32.const 0)))
          (then (f32.store (local.get $dy) (f32.const 0))))
        (local.set $dy (i32.add (local.get $dy) (i32.const 4)))
        (local.set $y (i32.add (local.get $y) (i32.const 4)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $tail))))

  ;; out = a + b·s over n floats (out may be a).
  (func (export "add_scaled") (param $out i32) (param $a i32) (param $b i32) (param $s f32)
    (param $n i32)
    (local $sv v128)
    (local.set $sv (f32x4.splat (local.get $s)))
    (block $done
      (loop $vec
        (br_if $done (i32.lt_u (local.get $n) (i32.const 4)))
        (v128.store (local.get $out)
          (f32x4.add (v128.load (local.get $a))
            (f32x4.mul (v128.load (local.get $b)) (local.get $sv))))
        (local.set $out (i32.add (local.get $out) (i32.const 16)))
        (local.set $a (i32.add (local.get $a) (i32.const 16)))
        (local.set $b (i32.add (local.get $b) (i32.const 16)))
        (local.set $n (i32.sub (local.get $n) (i32.const 4)))
        (br $vec)))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.eqz (local.get $n)))
        (f32.store (local.get $out)
          (f32.add (f32.load (local.get $a)) (f32.mul (f32.load (local.get $b)) (local.get $s))))
        (local.set $out (i32.add (local.get $out) (i32.const 4)))
        (local.set $a (i32.add (local.get $a) (i32.const 4)))
        (local.set $b (i32.add (local.get $b) (i32.const 4)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $tail))))

  ;; out = a·b over n floats (out may be a or b).
  (func (export "mul") (param $out i32) (param $a i32) (param $b i32) (param $n i32)
    (block $done
      (loop $vec
        (br_if $done (i32.lt_u (local.get $n) (i32.const 4)))
        (v128.store (local.get $out)
          (f32x4.mul (v128.load (local.get $a)) (v128.load (local.get $b))))
        (local.set $out (i32.add (local.get $out) (i32.const 16)))
        (local.set $a (i32.add (local.get $a) (i32.const 16)))
        (local.set $b (i32.add (local.get $b) (i32.const 16)))
        (local.set $n (i32.sub (local.get $n) (i32.const 4)))
        (br $vec)))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.eqz (local.get $n)))
        (f32.store (local.get $out) (f32.mul (f32.load (local.get $a)) (f32.load (local.get $b))))
        (local.set $out (i32.add (local.get $out) (i32.const 4)))
        (local.set $a (i32.add (local.get $a) (i32.const 4)))
        (local.set $b (i32.add (local.get $b) (i32.const 4)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $tail))))
)
