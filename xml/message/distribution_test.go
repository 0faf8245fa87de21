package message_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/xml/message"
)

// stubKey stands in for an xenc:EncryptedKey: the message package only places it.
func stubKey(value string) *etree.Element {
	ek := etree.NewElement("xenc:EncryptedKey")
	ek.CreateAttr("xmlns:xenc", "http://www.w3.org/2001/04/xmlenc#")
	ek.CreateElement("xenc:CipherData").CreateElement("xenc:CipherValue").SetText(value)
	return ek
}

func exampleShipment() message.Shipment {
	created := time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)
	return message.Shipment{
		Envelope: message.Envelope{Type: "Shipment", ID: "sh-6c0f6a1e-2b7d-4e35-9a51-0d3f8e2c4b17", MessageID: "6c0f6a1e-2b7d-4e35-9a51-0d3f8e2c4b17",
			Sender: message.Center, Recipient: "T-CORNER-1", Created: created},
		ShipmentID: "S-0b8e2f4a-7c1d-4a9e-b3f6-5d2c8e1a7f40", Retailer: "R-CORNER", RetailerName: "Corner Shop",
		Product:        message.ShipmentProduct{Operator: "OP-A", Code: "P10", FaceValue: 1000, Currency: "EUR"},
		RefillTemplate: "Dial *123*{PIN}# then press call",
		TerminalShare:  stubKey("dGVybWluYWwgc2hhcmU="),
		VendorShares:   map[string]*etree.Element{"V-1": stubKey("dmVuZG9yIHNoYXJl")},
		Codes: []message.SealedCode{
			{Serial: "100000000000", Expiry: time.Date(2027, 12, 31, 0, 0, 0, 0, time.UTC), Sealed: []byte("0123456789abcdef0123456789abcdef")},
			{Serial: "100000000001", Expiry: time.Date(2027, 12, 31, 0, 0, 0, 0, time.UTC), Sealed: []byte("fedcba9876543210fedcba9876543210")},
		},
	}
}

func readShipment(b []byte) (message.Shipment, error) {
	doc, err := message.Parse(b, message.DefaultLimits)
	if err != nil {
		return message.Shipment{}, err
	}
	return message.ReadShipment(doc.Root())
}

func TestShipment(t *testing.T) {
	want := exampleShipment()
	b, err := message.BuildShipment(want).WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(filepath.Join("testdata", "Shipment.xml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	check := func(t *testing.T, got message.Shipment, name string) {
		t.Helper()
		if got.ShipmentID != want.ShipmentID || got.Retailer != "R-CORNER" || got.RetailerName != name || got.Product != want.Product ||
			got.RefillTemplate != want.RefillTemplate || len(got.Codes) != 2 || got.Codes[1].Serial != "100000000001" ||
			got.TerminalShare == nil || got.VendorShares["V-1"] == nil {
			t.Fatalf("read back %+v", got)
		}
	}
	t.Run("OK", func(t *testing.T) {
		for _, src := range [][]byte{b, mustRead(t, "Shipment.xml")} {
			got, err := readShipment(src)
			if err != nil {
				t.Fatal(err)
			}
			check(t, got, "Corner Shop")
		}
	})
	t.Run("OKWithoutName", func(t *testing.T) {
		// As a center before the name travelled built it, and as one builds it today for a
		// retailer without a name: no element at all.
		old := exampleShipment()
		old.RetailerName = ""
		ob, err := message.BuildShipment(old).WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(ob), "RetailerName") {
			t.Fatalf("an empty name is sent: %s", ob)
		}
		got, err := readShipment(ob)
		if err != nil {
			t.Fatal(err)
		}
		check(t, got, "")
	})
	t.Run("ErrMalformed", func(t *testing.T) {
		for _, edit := range [][2]string{
			{`<RetailerName>Corner Shop</RetailerName>`, `<RetailerName>` + strings.Repeat("n", message.MaxRetailerName+1) + `</RetailerName>`},
			{`<RetailerName>Corner Shop</RetailerName>`, `<RetailerName>Corner Shop</RetailerName><RetailerName>Other</RetailerName>`},
			{`<RetailerName>Corner Shop</RetailerName>`, `<RetailerName><b>Corner</b></RetailerName>`},
		} {
			_, err := readShipment([]byte(strings.Replace(string(b), edit[0], edit[1], 1)))
			if evoucher.ReasonOf(err) != "malformed" {
				t.Fatalf("%v: %v", edit[1], err)
			}
		}
		// At the bound, in characters rather than bytes, it is accepted.
		long := strings.Repeat("é", message.MaxRetailerName)
		got, err := readShipment([]byte(strings.Replace(string(b), `>Corner Shop<`, `>`+long+`<`, 1)))
		if err != nil || got.RetailerName != long {
			t.Fatalf("a name of %d characters: %q %v", message.MaxRetailerName, got.RetailerName, err)
		}
	})
}
