//go:build math_big_pure_go

package dsig

import (
	"math/big"
	"math/bits"
)

// With the math_big_pure_go tag math/big has no assembly to lend (montgomery_linkname.go):
// the same loops, in Go, about half as fast.

// addMulVVW sets z += x·y and returns the carry word; x and z have the same length.
func addMulVVW(z, x []big.Word, y big.Word) (c big.Word) {
	for i := range z {
		hi, lo := bits.Mul(uint(x[i]), uint(y))
		lo, cc := bits.Add(lo, uint(z[i]), 0)
		hi += cc
		lo, cc = bits.Add(lo, uint(c), 0)
		hi += cc
		z[i], c = big.Word(lo), big.Word(hi)
	}
	return c
}

// subVV sets z = x − y and returns the borrow; the three have the same length.
func subVV(z, x, y []big.Word) (c big.Word) {
	var b uint
	for i := range z {
		var d uint
		d, b = bits.Sub(uint(x[i]), uint(y[i]), b)
		z[i] = big.Word(d)
	}
	return big.Word(b)
}

// shlVU sets z = x << s, for 0 < s < W, and returns the bits shifted out.
func shlVU(z, x []big.Word, s uint) (c big.Word) {
	c = x[len(x)-1] >> (bits.UintSize - s)
	for i := len(z) - 1; i > 0; i-- {
		z[i] = x[i]<<s | x[i-1]>>(bits.UintSize-s)
	}
	z[0] = x[0] << s
	return c
}
