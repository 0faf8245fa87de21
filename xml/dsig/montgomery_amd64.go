//go:build amd64 && !math_big_pure_go

package dsig

import (
	"math/big"

	"golang.org/x/sys/cpu"
)

// On amd64 the row operation of montgomery.go, z += x·y, is the package's own assembly
// (montgomery_amd64.s, math/big's two loops): math/big's addMulVVW, which montgomery_addmul.go
// reaches elsewhere, is a Go function around its assembly, and its extra call, at each of the
// 1,800 rows of an RSA-3072 verification, made the verification 10% slower (44.6 µs against
// 40.7, BenchmarkVerifyRSA).

// hasADX reports whether the processor has the ADX and BMI2 instructions (MULX, ADCX, ADOX)
// that addMulVVWADX and reduceRowsADX need, as math/big decides between the same two loops:
// without them the MULQ loop, one carry chain, verifies RSA-3072 in 69 µs rather than 39, and
// RSA-2048 in 31 µs rather than 19, as bigmod does without them (32 µs). It describes the
// machine, set once as math/big's own is, rather than a setting.
var hasADX = cpu.X86.HasADX && cpu.X86.HasBMI2

// addMulVVW sets z += x·y and returns the carry word; x and z have the same length. It runs
// addMulVVWADX where the processor has ADX and BMI2, addMulVVWMULQ otherwise.
//
//go:noescape
func addMulVVW(z, x []big.Word, y big.Word) (c big.Word)

// addMulVVWMULQ is addMulVVW on MULQ and one carry chain, which any amd64 processor runs.
//
//go:noescape
func addMulVVWMULQ(z, x []big.Word, y big.Word) (c big.Word)

// addMulVVWADX is addMulVVW on MULX and two carry chains (ADCX, ADOX), for processors with
// ADX and BMI2 only (hasADX).
//
//go:noescape
func addMulVVWADX(z, x []big.Word, y big.Word) (c big.Word)

// reduceRows is reduceRowsGo, the rows of a Montgomery reduction, in one function: a call of
// addMulVVW for each of them, with the carries added between the calls in Go, made RSA-3072
// verifications 7% slower (40.8 µs against 38.0, BenchmarkVerifyRSA) and RSA-2048 ones 6%
// (20.6 µs against 19.4). It runs reduceRowsADX where the processor has ADX and BMI2,
// reduceRowsMULQ otherwise.
//
//go:noescape
func reduceRows(t, m []big.Word, k0 big.Word) (c big.Word)

// reduceRowsMULQ is reduceRows on addMulVVWMULQ's loop.
//
//go:noescape
func reduceRowsMULQ(t, m []big.Word, k0 big.Word) (c big.Word)

// reduceRowsADX is reduceRows on addMulVVWADX's loop, for processors with ADX and BMI2 only.
//
//go:noescape
func reduceRowsADX(t, m []big.Word, k0 big.Word) (c big.Word)
