package dsig

import (
	"math/big"
	"math/bits"
)

// montModulus is an odd modulus N of n words, with what Montgomery arithmetic modulo N needs,
// R being 2^(n·W) for words of W bits: k0 = −N⁻¹ mod 2^W, and R² mod N. R² costs a division,
// so a Verifier computes them once per key (newRSAKey).
//
// It raises signatures to the public exponent because math/big's Exp, for a one-word exponent,
// squares and multiplies with a division after every step (Montgomery multiplication is kept
// for longer exponents), and because filippo.io/bigmod has assembly for moduli of up to 2048
// bits only, and is slower there too once the reduction is in assembly (rsa.go). Its
// operations are math/big's own (nat.montgomery, basicSqr) on math/big's assembly loops
// (montgomery_linkname.go), without allocation, but where nearly all the time goes. On amd64
// the row operation addMulVVW is math/big's loop copied (montgomery_amd64.s), because
// math/big lends it only behind a Go wrapper, whose extra call made RSA-3072 verifications
// 10% slower (44.6 µs against 40.7); and the rows of the reduction that follows a square are
// that loop run n times in one function (reduceRows), which took RSA-3072 verifications from
// 40.8 µs to 38.0 and RSA-2048 ones from 20.6 to 19.4, below bigmod's 20.7. It handles public
// values only, and takes variable time.
type montModulus struct {
	n  []big.Word // N, least significant word first
	k0 big.Word   // −N⁻¹ mod 2^W
	rr []big.Word // R² mod N
}

// newMontModulus returns N's constants. N must be odd and positive.
func newMontModulus(N *big.Int) *montModulus {
	n := (N.BitLen() + bits.UintSize - 1) / bits.UintSize
	m := &montModulus{n: make([]big.Word, n), rr: make([]big.Word, n)}
	copy(m.n, N.Bits())
	// Newton's iteration for N⁻¹ mod 2^W doubles the number of correct low bits at every
	// step, from 3 (an odd number is its own inverse mod 8): five steps make 96.
	inv := m.n[0]
	for range 5 {
		inv *= 2 - m.n[0]*inv
	}
	m.k0 = -inv
	rr := new(big.Int).Lsh(big.NewInt(1), uint(2*n*bits.UintSize))
	copy(m.rr, rr.Mod(rr, N).Bits())
	return m
}

// words is the number of words of N, the length of every operand.
func (m *montModulus) words() int { return len(m.n) }

// expVarTime sets z = x^e mod N, for x < N and an odd e ≥ 3, by left-to-right
// square-and-multiply on x·R. Its last multiplication, by x rather than x·R (e is odd), also
// takes the result out of Montgomery form. scratch holds 3·words() words; z must not be x.
func (m *montModulus) expVarTime(z, x []big.Word, e uint, scratch []big.Word) {
	n := len(m.n)
	xR, t := scratch[:n], scratch[n:3*n]
	m.mul(xR, x, m.rr, t)
	copy(z, xR)
	for i := bits.Len(e) - 2; i > 0; i-- {
		m.sqr(z, z, t)
		if e>>uint(i)&1 == 1 {
			m.mul(z, z, xR, t)
		}
	}
	m.sqr(z, z, t)
	m.mul(z, z, x, t) // below 2N, x being below N
	if !less(z, m.n) {
		subVV(z, z, m.n)
	}
}

// The operations below take operands of words() words, below R, and return results below R
// but not always below N, which is all the next operation needs: for x, y < R and the U < R
// that the reduction adds, (x·y + U·N)/R < R + N, and one subtraction of N, when it does not
// fit in words() words, brings it below R.

// mul sets z = x·y·R⁻¹ mod N, with the product and its reduction interleaved as in math/big's
// nat.montgomery. t holds 2·words() words; z may be x or y.
func (m *montModulus) mul(z, x, y, t []big.Word) {
	n := len(m.n)
	clear(t[:n])
	var c big.Word
	for i := range n {
		// t[i:n+i] += x·y[i] + u·N, with u making t[i] zero; the carries go to t[n+i],
		// which no row has written yet, and the carry of that sum to the next row.
		c2 := addMulVVW(t[i:n+i], x, y[i])
		c3 := addMulVVW(t[i:n+i], m.n, t[i]*m.k0)
		cx := c + c2
		cy := cx + c3
		t[n+i] = cy
		if cx < c2 || cy < c3 {
			c = 1
		} else {
			c = 0
		}
	}
	if c != 0 {
		subVV(z, t[n:2*n], m.n)
	} else {
		copy(z, t[n:2*n])
	}
}

// sqr sets z = x²·R⁻¹ mod N. The square costs half a product, as math/big's basicSqr makes
// it: the products x[i]·x[j] for j < i once, doubled, plus the squares x[i]². t holds
// 2·words() words; z may be x.
func (m *montModulus) sqr(z, x, t []big.Word) {
	n := len(m.n)
	t[0], t[2*n-1] = 0, 0
	for i := 1; i < n; i++ {
		// Row i adds to t[i:2i] and sets its carry in t[2i]; the rows before it end at
		// t[2i−2], so t[2i−1] is still to be cleared.
		t[2*i-1] = 0
		t[2*i] = addMulVVW(t[i:2*i], x[:i], x[i])
	}
	shlVU(t[:2*n], t[:2*n], 1)
	var c uint
	for i, d := range x {
		hi, lo := bits.Mul(uint(d), uint(d))
		var s uint
		s, c = bits.Add(uint(t[2*i]), lo, c)
		t[2*i] = big.Word(s)
		s, c = bits.Add(uint(t[2*i+1]), hi, c)
		t[2*i+1] = big.Word(s)
	}
	m.reduce(z, t)
}

// reduce sets z = t·R⁻¹ mod N for the t < R² held in 2·words() words, which it overwrites.
func (m *montModulus) reduce(z, t []big.Word) {
	n := len(m.n)
	if reduceRows(t[:2*n], m.n, m.k0) != 0 {
		subVV(z, t[n:2*n], m.n)
	} else {
		copy(z, t[n:2*n])
	}
}

// reduceRowsGo adds to t, of 2·len(m) words, the multiples of m that make its low len(m)
// words zero, one row at a time: t[i:n+i] += m·u with u = t[i]·k0, the carry of that row and
// the previous row's added to t[n+i]. It returns the carry out of t, 0 or 1. reduceRows is this
// loop, in assembly on amd64 (montgomery_amd64.s), here elsewhere (montgomery_other.go).
func reduceRowsGo(t, m []big.Word, k0 big.Word) big.Word {
	n := len(m)
	var c uint
	for i := range n {
		c2 := addMulVVW(t[i:n+i], m, t[i]*k0)
		var s uint
		s, c = bits.Add(uint(t[n+i]), uint(c2), c)
		t[n+i] = big.Word(s)
	}
	return big.Word(c)
}

// less reports whether x < y, both of the same number of words.
func less(x, y []big.Word) bool {
	for i := len(x) - 1; i >= 0; i-- {
		if x[i] != y[i] {
			return x[i] < y[i]
		}
	}
	return false
}

// setBytes sets z to the big-endian number b, which fits in z.
func setBytes(z []big.Word, b []byte) {
	const s = bits.UintSize / 8
	clear(z)
	for i, c := range b {
		d := len(b) - 1 - i // c's place, in bytes from the least significant
		z[d/s] |= big.Word(c) << (8 * (d % s))
	}
}

// fillBytes writes x into b, big-endian; x must fit in b.
func fillBytes(b []byte, x []big.Word) {
	const s = bits.UintSize / 8
	for i := range b {
		d := len(b) - 1 - i
		b[i] = byte(x[d/s] >> (8 * (d % s)))
	}
}
