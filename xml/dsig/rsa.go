package dsig

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"math/big"
)

// digestInfoSHA256 is the DER encoding of a DigestInfo for SHA-256 without the hash itself
// (RFC 8017 §9.2, note 1).
var digestInfoSHA256 = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// verifyRSA checks an RSASSA-PKCS1-v1_5 signature over a SHA-256 hash, as
// rsa.VerifyPKCS1v15(pub, crypto.SHA256, hashed, sig) does, and returns rsa.ErrVerification
// when it does not hold.
//
// crypto/rsa computes with constant-time arithmetic that has assembly for moduli of up to
// 2048 bits only: an RSA-3072 verification (the center's key) costs it about 190 µs against
// 30 µs for RSA-2048. A verification handles public values only, so it needs no constant
// time: for other sizes the public operation is done with math/big (about 70 µs for 3072
// bits), and, as RFC 8017 §8.2.2 prescribes, the recovered block is compared byte for byte
// with the one encoding hashed, which leaves nothing to parse. TestVerifyRSA checks it
// against crypto/rsa on valid, altered and crafted signatures.
func verifyRSA(pub *rsa.PublicKey, hashed, sig []byte) error {
	if pub.N.BitLen() == 2048 {
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, hashed, sig)
	}
	k := pub.Size()
	t := len(digestInfoSHA256) + len(hashed)
	if len(hashed) != 32 || len(sig) != k || k < t+11 || pub.E < 3 || pub.E%2 == 0 {
		return rsa.ErrVerification
	}
	s := new(big.Int).SetBytes(sig)
	if s.Cmp(pub.N) >= 0 {
		return rsa.ErrVerification
	}
	em := s.Exp(s, big.NewInt(int64(pub.E)), pub.N).FillBytes(make([]byte, k))
	// EM = 0x00 ‖ 0x01 ‖ PS (0xff, k − t − 3 of them) ‖ 0x00 ‖ DigestInfo ‖ hash
	want := make([]byte, k)
	want[1] = 0x01
	for i := 2; i < k-t-1; i++ {
		want[i] = 0xff
	}
	copy(want[k-t:], digestInfoSHA256)
	copy(want[k-len(hashed):], hashed)
	if !bytes.Equal(em, want) {
		return rsa.ErrVerification
	}
	return nil
}
