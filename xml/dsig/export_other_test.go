//go:build !amd64 || math_big_pure_go

package dsig

import "math/big"

// AddMulVVWLoops are the implementations of addMulVVW that this machine runs, by name, for
// TestAddMulVVW: addMulVVW alone, math/big's or the pure-Go one.
func AddMulVVWLoops() map[string]func(z, x []big.Word, y big.Word) big.Word {
	return map[string]func(z, x []big.Word, y big.Word) big.Word{"addMulVVW": addMulVVW}
}

// ReduceRowsLoops are the implementations of reduceRows that this machine runs, by name, for
// TestReduceRows: reduceRows alone, which is reduceRowsGo here.
func ReduceRowsLoops() map[string]func(t, m []big.Word, k0 big.Word) big.Word {
	return map[string]func(t, m []big.Word, k0 big.Word) big.Word{"reduceRows": reduceRows}
}
