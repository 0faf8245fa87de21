package pkcs11

import (
	"errors"

	p11 "github.com/miekg/pkcs11"
)

// Sentinel errors, wrapped with %w by the functions of this package: test them with errors.Is.
var (
	// ErrInvalid reports a bad argument: an incomplete Config, an empty or overlong label, a
	// refused key size, a digest of the wrong length.
	ErrInvalid = errors.New("pkcs11: invalid argument")
	// ErrTokenNotFound reports that the module has no token with the requested label.
	ErrTokenNotFound = errors.New("pkcs11: token not found")
	// ErrTokenExists reports that a token with the requested label already exists.
	ErrTokenExists = errors.New("pkcs11: token already exists")
	// ErrPINIncorrect reports that the token refused the PIN.
	ErrPINIncorrect = errors.New("pkcs11: PIN incorrect")
	// ErrPINLocked reports that the token locked the PIN after too many wrong attempts.
	ErrPINLocked = errors.New("pkcs11: PIN locked")
	// ErrKeyNotFound reports that the token holds no key with the requested label.
	ErrKeyNotFound = errors.New("pkcs11: key not found")
	// ErrKeyMismatch reports that the label is taken by a key of another type or size, or by
	// an incomplete key pair.
	ErrKeyMismatch = errors.New("pkcs11: key exists with another type or size")
	// ErrDuplicateKey reports that more than one key carries the label, so using either would
	// be a guess.
	ErrDuplicateKey = errors.New("pkcs11: more than one key with this label")
	// ErrUnsupported reports an operation this package refuses (RSA PKCS#1 v1.5 decryption,
	// SHA-1 or MD5 signatures) or one the token does not implement.
	ErrUnsupported = errors.New("pkcs11: operation refused or not supported")
)

// ckr returns the PKCS#11 return value in err's chain, or 0 (CKR_OK) if there is none.
func ckr(err error) p11.Error {
	var e p11.Error
	if errors.As(err, &e) {
		return e
	}
	return 0
}
