package operator

import (
	"crypto"
	"crypto/x509"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/evoucher/evoucher/xml/dsig"
	"github.com/evoucher/evoucher/xml/message"
	"github.com/evoucher/evoucher/xml/xenc"
)

// maxCSVCodes bounds one CSV file.
const maxCSVCodes = 10_000_000

// ReadCodesCSV reads an operator's code list: lines "serial,pin,expiry" (expiry as
// YYYY-MM-DD), an optional header line "serial,pin,expiry", no other columns. It returns
// invalid errors naming the line at fault, never the PIN.
func ReadCodesCSV(r io.Reader) ([]message.Code, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 3
	cr.ReuseRecord = true
	var codes []message.Code
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, invalid("bad_csv", "line %d: %v", pe.Line, pe.Err)
			}
			return nil, err
		}
		if line == 1 && strings.EqualFold(rec[0], "serial") {
			continue
		}
		serial, pin := strings.TrimSpace(rec[0]), strings.TrimSpace(rec[1])
		exp, err := time.Parse(time.DateOnly, strings.TrimSpace(rec[2]))
		if err != nil {
			return nil, invalid("bad_csv", "line %d: expiry %q is not a date (YYYY-MM-DD)", line, rec[2])
		}
		if serial == "" || pin == "" {
			return nil, invalid("bad_csv", "line %d: serial and PIN must not be empty", line)
		}
		if len(codes) >= maxCSVCodes {
			return nil, invalid("bad_csv", "more than %d codes in one file: split it", maxCSVCodes)
		}
		codes = append(codes, message.Code{Serial: serial, PIN: message.PIN(pin), Expiry: exp})
	}
	if len(codes) == 0 {
		return nil, invalid("bad_csv", "no codes in the file")
	}
	return codes, nil
}

// SealRequest is what Seal needs to turn a code list into signed, encrypted CodeBatch parts.
type SealRequest struct {
	Operator      string // the sender: this operator's id
	BatchID       string
	Product       string
	FaceValue     int64
	Currency      string
	PurchaseOrder string // the order this lot answers, if any
	Codes         []message.Code
	PartSize      int // codes per part (default 50,000)
	// The operator-sign key (a token key or a PEM key) and its certificate.
	Signer crypto.Signer
	Cert   *x509.Certificate
	// The center-encrypt certificate: the codes are encrypted to it.
	CenterCert *x509.Certificate
	// KeyTransport is xenc.RSAOAEPMGF1P (default) or xenc.RSAOAEP.
	KeyTransport string
	Now          time.Time
}

// Seal returns the CodeBatch documents of a lot, one per part, each signed and with its codes
// encrypted to the center. It returns invalid errors for a bad request.
func Seal(req SealRequest) ([][]byte, error) {
	if req.PartSize <= 0 {
		req.PartSize = 50_000
	}
	switch {
	case len(req.Codes) == 0:
		return nil, invalid("bad_batch", "no codes to seal")
	case req.Signer == nil || req.Cert == nil || req.CenterCert == nil:
		return nil, errors.New("seal: signer, certificate and center certificate are required")
	case req.FaceValue <= 0:
		return nil, invalid("bad_batch", "face value must be positive")
	}
	parts := (len(req.Codes) + req.PartSize - 1) / req.PartSize
	n := int64(len(req.Codes))
	var out [][]byte
	for p := 1; p <= parts; p++ {
		lo, hi := (p-1)*req.PartSize, min(p*req.PartSize, len(req.Codes))
		w := message.NewCodesWriter()
		for _, c := range req.Codes[lo:hi] {
			w.Add(c)
		}
		h := message.BatchHeader{BatchID: req.BatchID, Part: p, Parts: parts, Product: req.Product, FaceValue: req.FaceValue,
			Currency: req.Currency, Count: w.Count(), TotalFaceValue: int64(w.Count()) * req.FaceValue, CodesDigest: w.Digest(),
			LotCount: n, LotFaceValue: n * req.FaceValue, PurchaseOrder: req.PurchaseOrder}
		plain := w.Finish(req.Operator, h)
		enc, err := xenc.Encrypt(plain, xenc.TypeElement, xenc.Recipient{Cert: req.CenterCert, KeyTransport: req.KeyTransport})
		clear(plain)
		if err != nil {
			return nil, fmt.Errorf("encrypt part %d: %w", p, err)
		}
		id := uuid.NewString()
		env := message.Envelope{ID: "cb-" + id, MessageID: id, Sender: req.Operator, Recipient: message.Center, Created: req.Now.UTC()}
		doc := message.BuildCodeBatch(env, h, enc)
		b, err := dsig.SignBytes(doc, req.Signer, req.Cert)
		if err != nil {
			return nil, fmt.Errorf("sign part %d: %w", p, err)
		}
		out = append(out, b)
	}
	return out, nil
}
