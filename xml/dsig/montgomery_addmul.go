//go:build !amd64 && !math_big_pure_go

package dsig

import (
	"math/big"
	_ "unsafe" // for go:linkname
)

// addMulVVW sets z += x·y and returns the carry word; x and z have the same length. It is
// math/big's, on its assembly for the architecture; amd64 has its own (montgomery_amd64.go).
//
//go:linkname addMulVVW math/big.addMulVVW
//go:noescape
func addMulVVW(z, x []big.Word, y big.Word) (c big.Word)
