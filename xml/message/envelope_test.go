package message_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/evoucher/evoucher/xml/message"
)

// The regular expressions the envelope's patterns replace.
var patterns = []struct {
	name  string
	re    *regexp.Regexp
	match func(string) bool
}{
	{"Id", regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9._-]{0,63}$`), message.MatchID},
	{"MessageId", regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`), message.MatchUUID},
	{"party", regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`), message.MatchParty},
}

var patternSeeds = []string{
	"", "a", "_", "-", ".", "0", "T-01", "OP-A", "center", "po-1", "_x", "9x", "x y", "x\n", "\nx", "é", "xé",
	"rc-0f8fad5b-d9cb-469f-a165-70867728950e", "0f8fad5b-d9cb-469f-a165-70867728950e",
	"0F8FAD5B-d9cb-469f-a165-70867728950e", "0f8fad5b-d9cb-469f-a165-70867728950", "0f8fad5b-d9cb-469f-a165-70867728950e0",
	"0f8fad5bd-9cb-469f-a165-70867728950e", "0f8fad5b-d9cb-469f-a165-70867728950g", "0f8fad5b-d9cb-469f-a165_70867728950e",
	strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 65), "a" + strings.Repeat("-", 63), "a" + strings.Repeat("-", 64),
}

// TestPatternsAgree: each pattern accepts exactly what its regular expression accepts, on
// edge cases (lengths, first characters, case, separators, non-ASCII).
func TestPatternsAgree(t *testing.T) {
	accepted := map[string]int{}
	for _, s := range patternSeeds {
		for _, p := range patterns {
			if got, want := p.match(s), p.re.MatchString(s); got != want {
				t.Errorf("%s pattern on %q: %v, the regular expression says %v", p.name, s, got, want)
			} else if got {
				accepted[p.name]++
			}
		}
	}
	for _, p := range patterns {
		if accepted[p.name] == 0 {
			t.Errorf("no seed is a valid %s: the comparison proves little", p.name)
		}
	}
}

func FuzzPatternsAgree(f *testing.F) {
	for _, s := range patternSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range patterns {
			if got, want := p.match(s), p.re.MatchString(s); got != want {
				t.Fatalf("%s pattern on %q: %v, the regular expression says %v", p.name, s, got, want)
			}
		}
	})
}
