// Package pkcs11 owns the platform's keys that live in PKCS#11 tokens: HSM keys of the center,
// terminal tokens and vendor smart cards, all reached through crypto11 and chosen by module
// path, token label and PIN. It creates keys non-extractable (CKA_SENSITIVE true,
// CKA_EXTRACTABLE false, CKA_TOKEN true), finds them again by label, and hands them out as the
// standard library's interfaces: crypto.Signer, crypto.Decrypter and cipher.AEAD. It never
// exports key material, never offers RSA PKCS#1 v1.5 decryption, SHA-1 or MD5 signatures, and
// never reads configuration itself: the caller passes a Config.
//
// # One module context per process
//
// A PKCS#11 library is process-global C state: crypto11 loads each module path once, calls
// C_Initialize when the first Token opens and C_Finalize when the last one closes. Open
// resolves symbolic links in Config.Module so that every path to the same library shares
// that one context (Debian's /usr/lib/softhsm/libsofthsm2.so is a link).
//
// PKCS#11 keeps one login per application and token, and crypto11 accepts
// CKR_USER_ALREADY_LOGGED_IN whatever the PIN. So a second Open of a token this process already
// has open cannot ask the token: Open compares its PIN with the one that logged in (kept as a
// SHA-256 digest while the token is open). Such refusals do not count against the token's PIN
// retry limit.
//
// # SoftHSM2
//
// libsofthsm2 reads the SOFTHSM2_CONF environment variable once, in C_Initialize, and scans its
// token directory then. Checked by experiment with SoftHSM 2.6.1: a token created by
// softhsm2-util (another process) after this process initialised the module is not listed by
// C_GetSlotList, so Open cannot find it until every Token of the process is closed and the
// module is initialised again. Tokens created inside the process (C_InitToken on the slot with
// the free token, then C_InitPIN) are visible at once. So, in one process:
//
//   - all SoftHSM tokens live in one token directory, and SOFTHSM2_CONF must name its
//     configuration before the first Open; setting it is the job of cmd or of the test helper,
//     never of this package;
//   - InitSoftHSMToken creates tokens in-process, on the same module, and refuses to run when
//     SOFTHSM2_CONF does not name the configuration it was given;
//   - loading and unloading of modules by Open, Close and InitSoftHSMToken is serialised, so
//     InitSoftHSMToken never calls C_Finalize while a Token is opening or open.
package pkcs11
