//go:build amd64 && !math_big_pure_go

package dsig

import "math/big"

// AddMulVVWLoops are the implementations of addMulVVW that this machine runs, by name, for
// TestAddMulVVW: the dispatching addMulVVW, the MULQ loop, and the ADX loop where the
// processor has ADX and BMI2.
func AddMulVVWLoops() map[string]func(z, x []big.Word, y big.Word) big.Word {
	loops := map[string]func(z, x []big.Word, y big.Word) big.Word{"addMulVVW": addMulVVW, "MULQ": addMulVVWMULQ}
	if hasADX {
		loops["ADX"] = addMulVVWADX
	}
	return loops
}

// ReduceRowsLoops are the implementations of reduceRows that this machine runs, by name, for
// TestReduceRows to hold to ReduceRowsGo: the dispatching reduceRows, the MULQ loop, and the
// ADX loop where the processor has ADX and BMI2.
func ReduceRowsLoops() map[string]func(t, m []big.Word, k0 big.Word) big.Word {
	loops := map[string]func(t, m []big.Word, k0 big.Word) big.Word{"reduceRows": reduceRows, "MULQ": reduceRowsMULQ}
	if hasADX {
		loops["ADX"] = reduceRowsADX
	}
	return loops
}
