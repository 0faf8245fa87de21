package dashboard

import (
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/access"
	"github.com/evoucher/evoucher/codevault"
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ParseFilter reads a journal filter from a query string: operator, retailer, terminal,
// product, state (ids), from and to (RFC 3339 or YYYY-MM-DD, UTC), page (from 1) and size
// (1 to 500, default 50). It returns invalid ("bad_filter") naming the first bad parameter.
func ParseFilter(q url.Values) (codevault.JournalFilter, error) {
	var f codevault.JournalFilter
	for _, p := range []struct {
		name string
		to   *string
	}{{"operator", &f.Operator}, {"retailer", &f.Retailer}, {"terminal", &f.Terminal}, {"product", &f.Product}, {"state", &f.State}} {
		v := q.Get(p.name)
		if v != "" && !idPattern.MatchString(v) {
			return f, badFilter("%s %q is not an id (letters, digits, '.', '_', '-')", p.name, v)
		}
		*p.to = v
	}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			if t, err = time.Parse(time.DateOnly, v); err != nil {
				return f, badFilter("%s %q is not a date (YYYY-MM-DD) or an RFC 3339 time", p.name, v)
			}
		}
		if t.Year() < 2000 || t.Year() > 9999 {
			return f, badFilter("%s %q is out of range", p.name, v)
		}
		*p.to = t.UTC()
	}
	f.Limit = 50
	if v := q.Get("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return f, badFilter("size %q must be a number from 1 to 500", v)
		}
		f.Limit = n
	}
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100_000 {
			return f, badFilter("page %q must be a number from 1", v)
		}
		f.Offset = (n - 1) * f.Limit
	}
	return f, nil
}

func badFilter(format string, args ...any) error {
	return evoucher.Errorf(evoucher.KindInvalid, "bad_filter", format, args...)
}

// confine forces a scoped user's filter onto its own retailer or operator: a retailer manager
// asking for another retailer's rows gets its own (none of the other's).
func confine(f codevault.JournalFilter, p access.Principal) codevault.JournalFilter {
	if p.Retailer != "" {
		f.Retailer = p.Retailer
	}
	if p.Operator != "" {
		f.Operator = p.Operator
	}
	return f
}
