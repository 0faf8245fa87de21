package dsig

import (
	"bytes"
	"crypto/rsa"
	"math/big"
	"sync"
)

// digestInfoSHA256 is the DER encoding of a DigestInfo for SHA-256 without the hash itself
// (RFC 8017 §9.2, note 1).
var digestInfoSHA256 = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// rsaKey is a signer's RSA public key, with what its verifications can compute once: the
// Montgomery constants of its modulus, which crypto/rsa computes again for every verification
// (about a third of its cost). They are montgomery.go's, on math/big's assembly loops and, on
// amd64, the package's own for the row operation and the reduction: 19.2 µs for RSA-2048, the
// operators' and retailers' keys, against 20.6 µs for filippo.io/bigmod (the standalone
// crypto/internal/fips140/bigmod, which RSA-2048 keys took until the reduction was in
// assembly) and 30 µs for crypto/rsa; 39 µs for RSA-3072, the center's, against 66 µs for
// math/big's Exp (a division after every step, for an exponent of one word) and 120 µs for
// bigmod, which has no assembly for 48 words (BenchmarkVerifyRSA, medians of six, on one core
// of an AMD EPYC). Verifier keeps one rsaKey per certificate.
type rsaKey struct {
	pub  *rsa.PublicKey
	ok   bool         // crypto/rsa accepts the key (N odd, E odd, 3 ≤ E < 2³¹) and N ≤ maxRSABits
	mont *montModulus // N
	// scratch holds *[]big.Word of 5·mont.words() words, the signature, the result and
	// expVarTime's scratch, so that verifications do not allocate: a pool rather than arrays
	// on the stack, which at maxRSABits would add 5 KB to every verification's frame.
	scratch sync.Pool
}

// RSAVerifier returns the verification of RSASSA-PKCS1-v1_5 signatures over SHA-256 hashes
// under pub, as a Verifier makes them for a signer it has seen before (what it computes once
// per key, computed now): for tools that time signature checks, such as evbench's floor.
func RSAVerifier(pub *rsa.PublicKey) func(hashed, sig []byte) error { return newRSAKey(pub).verify }

// newRSAKey prepares pub's verifications. A key that crypto/rsa refuses, or larger than
// maxRSABits, is kept all the same: it refuses every signature.
func newRSAKey(pub *rsa.PublicKey) *rsaKey {
	k := &rsaKey{pub: pub}
	k.ok = pub.N.Sign() > 0 && pub.N.Bit(0) == 1 && pub.E >= 3 && pub.E%2 == 1 && pub.E <= 1<<31-1 &&
		pub.N.BitLen() <= maxRSABits
	if !k.ok {
		return k
	}
	k.mont = newMontModulus(pub.N)
	n := k.mont.words()
	k.scratch.New = func() any {
		w := make([]big.Word, 5*n)
		return &w
	}
	return k
}

// verifyRSA checks an RSASSA-PKCS1-v1_5 signature over a SHA-256 hash, as
// rsa.VerifyPKCS1v15(pub, crypto.SHA256, hashed, sig) does, and returns rsa.ErrVerification
// when it does not hold. It precomputes what newRSAKey does for this one verification: a
// Verifier keeps the key instead (rsaKey.verify).
func verifyRSA(pub *rsa.PublicKey, hashed, sig []byte) error {
	return newRSAKey(pub).verify(hashed, sig)
}

// maxRSABytes is the size of the largest modulus accepted (maxRSABits).
const maxRSABytes = maxRSABits / 8

// verify checks an RSASSA-PKCS1-v1_5 signature over a SHA-256 hash under k, as
// rsa.VerifyPKCS1v15(k.pub, crypto.SHA256, hashed, sig) does, and returns rsa.ErrVerification
// when it does not hold. A verification handles public values only, so it needs no constant
// time; as RFC 8017 §8.2.2 prescribes, the block that the public operation recovers is
// compared byte for byte with the one encoding hashed, which leaves nothing to parse.
// TestVerifyRSA and FuzzVerifyRSA hold it to crypto/rsa on valid, altered and crafted
// signatures, TestMontExp holds montgomery.go's exponentiation to math/big's.
func (k *rsaKey) verify(hashed, sig []byte) error {
	size := k.pub.Size()
	t := len(digestInfoSHA256) + len(hashed)
	if !k.ok || len(hashed) != 32 || len(sig) != size || size < t+11 || size > maxRSABytes {
		return rsa.ErrVerification
	}
	var emBuf, wantBuf [maxRSABytes]byte
	em := emBuf[:size]
	w := k.scratch.Get().(*[]big.Word)
	defer k.scratch.Put(w)
	n := k.mont.words()
	s, m := (*w)[:n], (*w)[n:2*n]
	setBytes(s, sig)
	if !less(s, k.mont.n) {
		return rsa.ErrVerification
	}
	k.mont.expVarTime(m, s, uint(k.pub.E), (*w)[2*n:]) // m = s^E mod N (RFC 8017 §5.2.2)
	fillBytes(em, m)
	// EM = 0x00 ‖ 0x01 ‖ PS (0xff, size − t − 3 of them) ‖ 0x00 ‖ DigestInfo ‖ hash
	want := wantBuf[:size]
	want[1] = 0x01
	for i := 2; i < size-t-1; i++ {
		want[i] = 0xff
	}
	copy(want[size-t:], digestInfoSHA256)
	copy(want[size-len(hashed):], hashed)
	if !bytes.Equal(em, want) {
		return rsa.ErrVerification
	}
	return nil
}
