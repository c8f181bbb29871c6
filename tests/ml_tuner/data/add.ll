; Hand-checked module for tests/ml_tuner/test_measure.py: two instructions, one of them dead code
; before optimization (the mul). aarch64: add w0, w0, w1 ; ret  -> 8 bytes of .text.
target triple = "aarch64-linux-gnu"

define i32 @add(i32 %a, i32 %b) {
entry:
  %dead = mul i32 %a, 7
  %s = add i32 %a, %b
  ret i32 %s
}
