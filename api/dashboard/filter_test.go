package dashboard_test

import (
	"net/url"
	"testing"

	"github.com/evoucher/evoucher/api/dashboard"
)

// FuzzParseFilter feeds arbitrary query strings to the journal filter parser: it never
// panics, and what it accepts is within bounds.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"", "operator=OP-A&from=2026-01-01&to=2026-12-31T00:00:00Z&page=3&size=20",
		"retailer=R%00&page=-1", "size=100000", "from=99999-01-01", "terminal=T-1&state=sent&product=P.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		jf, err := dashboard.ParseFilter(q)
		if err != nil {
			return
		}
		if jf.Limit < 1 || jf.Limit > 500 || jf.Offset < 0 || len(jf.Operator) > 64 || len(jf.Retailer) > 64 {
			t.Fatalf("accepted out of bounds: %+v", jf)
		}
	})
}

func TestParseFilter(t *testing.T) {
	for _, bad := range []string{"operator=%27%3B+DROP", "from=yesterday", "size=0", "page=0", "size=501", "to=0001-01-01"} {
		q, _ := url.ParseQuery(bad)
		if _, err := dashboard.ParseFilter(q); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	q, _ := url.ParseQuery("operator=OP-A&page=3&size=20&from=2026-01-02")
	f, err := dashboard.ParseFilter(q)
	if err != nil || f.Operator != "OP-A" || f.Offset != 40 || f.Limit != 20 || f.From.Format("2006-01-02") != "2026-01-02" {
		t.Fatalf("%+v %v", f, err)
	}
}
