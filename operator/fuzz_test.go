package operator_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/operator"
)

func TestReadCodesCSV(t *testing.T) {
	codes, err := operator.ReadCodesCSV(strings.NewReader("serial,pin,expiry\n000000000001,12345678901234,2027-12-31\n000000000002, 99 ,2028-01-01\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != 2 || codes[1].Serial != "000000000002" || string(codes[1].PIN) != "99" || codes[1].Expiry.Year() != 2028 {
		t.Fatalf("%d codes", len(codes))
	}
	for _, c := range []struct{ name, in string }{
		{"ErrEmpty", ""},
		{"ErrColumns", "1,2\n"},
		{"ErrDate", "1,2,31/12/2027\n"},
		{"ErrNoPIN", "1,,2027-12-31\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := operator.ReadCodesCSV(strings.NewReader(c.in))
			if evoucher.ReasonOf(err) != "bad_csv" {
				t.Fatalf("got %v", err)
			}
		})
	}
	t.Run("ErrNeverShowsPIN", func(t *testing.T) {
		_, err := operator.ReadCodesCSV(strings.NewReader("1,SECRETPIN,not-a-date\n"))
		if err == nil || strings.Contains(err.Error(), "SECRETPIN") {
			t.Fatalf("error %v", err)
		}
	})
}

// FuzzReadCodesCSV: the operator's CSV is untrusted input to seal; never panic, never echo a
// PIN in an error.
func FuzzReadCodesCSV(f *testing.F) {
	f.Add([]byte("serial,pin,expiry\n000000000001,12345678901234,2027-12-31\n"))
	f.Add([]byte("\"a\"\"b\",c,2027-01-01\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		codes, err := operator.ReadCodesCSV(bytes.NewReader(b))
		if err != nil {
			if evoucher.KindOf(err) != evoucher.KindInvalid {
				t.Fatalf("refusal of another kind: %v", err)
			}
			return
		}
		for _, c := range codes {
			if c.Serial == "" || len(c.PIN) == 0 {
				t.Fatal("empty serial or PIN accepted")
			}
		}
	})
}
