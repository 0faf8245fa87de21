// Package xenc owns W3C XML Encryption for the platform's fixed profile (DESIGN.md §2, §9), on
// etree: an xenc:EncryptedData whose content is AES-256-GCM (xmlenc11#aes256-gcm, CipherValue =
// base64(12-byte IV ‖ ciphertext ‖ 16-byte tag), no additional data) under a content key
// that travels in one xenc:EncryptedKey per recipient, inside the EncryptedData's ds:KeyInfo.
// Each EncryptedKey wraps the same content key with RSA-OAEP to one certificate, which it names
// by ds:X509Data/ds:X509IssuerSerial, and may carry a Recipient attribute.
//
// Key transport is xmlenc#rsa-oaep-mgf1p (OAEP with SHA-1 and MGF1-SHA-1, what SoftHSM 2.6
// offers) by default, or xmlenc11#rsa-oaep with SHA-256 and MGF1-SHA-256 when asked for;
// xmlenc11#rsa-oaep with SHA-1 and MGF1-SHA-1 is read too. Private keys stay in their tokens:
// decryption goes through a crypto.Decrypter given *rsa.OAEPOptions.
//
// XML Encryption 1.1 defines no additional authenticated data for GCM and xmlsec1 cannot set
// one, so nothing outside the plaintext is bound to the ciphertext: a caller that needs to tie
// encrypted content to its context (a batch header, a shipment) puts that context inside the
// plaintext and checks it after decryption.
//
// The package never accepts CBC modes, RSA PKCS#1 v1.5 key transport, key-wrap algorithms, GCM
// with keys other than AES-256, OAEP parameters (labels), CipherReference or RetrievalMethod.
// It checks structure and algorithms of the whole EncryptedData before any key is used, and it
// neither verifies signatures nor checks certificate chains: that is the job of packages dsig
// and pki, before decryption.
//
// Every refusal is an *evoucher.Error of kind invalid with one of these reasons:
//
//   - "malformed": not the expected XML Encryption structure, a CipherValue that is not
//     base64, a missing Algorithm;
//   - "weak_algorithm": CBC modes, Triple DES, RSA PKCS#1 v1.5 key transport, MD5;
//   - "unsupported_algorithm": any other algorithm outside the profile (aes128-gcm, key wrap,
//     SHA-384 OAEP, mismatched OAEP digest and MGF, OAEP parameters), or an OAEP digest the
//     recipient's token does not implement;
//   - "unsupported_feature": CipherReference, RetrievalMethod, anything but EncryptedKey in
//     the EncryptedData's KeyInfo;
//   - "no_recipient": no EncryptedKey is addressed to the given certificate;
//   - "duplicate_recipient": more than one EncryptedKey is addressed to it;
//   - "bad_ciphertext": data or key ciphertext of the wrong size, or failing to decrypt
//     (altered, truncated, or encrypted under another key; the error says no more);
//   - "bad_key": the unwrapped content key is not 32 bytes.
//
// Encrypt also refuses a recipient certificate with "unsupported_key" (not RSA), "weak_key"
// (RSA under 2048 bits) or "wrong_key_usage" (not for key encipherment), a certificate given
// twice with "duplicate_recipient", and a content key that is not 32 bytes with "bad_key".
package xenc
