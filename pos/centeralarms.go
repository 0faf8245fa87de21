package pos

import (
	"encoding/json"
	"strings"
	"time"
	"unicode"
)

// CenterAlarm is an alarm the center keeps about this terminal (its stock below its minimum,
// a gap in its sales reports, its retailer over its credit, codes here about to expire), as
// the last sync brought it. It is the center's alarm, shown apart from the terminal's own
// alarm lines; the clerk cannot resolve it here. It never carries a code.
type CenterAlarm struct {
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
	State   string    `json:"state"` // open or acknowledged (seen by a manager)
	Since   time.Time `json:"since"`
}

// AlarmSource is a Remote that passes on the center's alarms about the terminal.
type AlarmSource interface {
	// CenterAlarms returns the alarms the center's last answer carried; ok is false when it
	// carried none at all (a center that does not send them), as opposed to an empty list.
	CenterAlarms() (alarms []CenterAlarm, ok bool)
}

const (
	keyCenterAlarms = "center_alarms" // JSON list of CenterAlarm, as the last sync brought it

	maxCenterAlarms = 20  // a screen shows a few; the center sends no more
	maxAlarmMessage = 300 // runes
)

// cleanAlarms bounds what the center sent and strips control characters, which would move
// the cursor of the clerk's screen.
func cleanAlarms(in []CenterAlarm) []CenterAlarm {
	out := make([]CenterAlarm, 0, min(len(in), maxCenterAlarms))
	for _, a := range in[:min(len(in), maxCenterAlarms)] {
		a.Kind, a.State, a.Message = printable(a.Kind, 40), printable(a.State, 20), printable(a.Message, maxAlarmMessage)
		a.Since = a.Since.UTC()
		out = append(out, a)
	}
	return out
}

func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return s
}

// setCenterAlarms replaces the center's alarms kept for the screen with list.
func (t *Till) setCenterAlarms(list []CenterAlarm) error {
	b, err := json.Marshal(cleanAlarms(list))
	if err != nil {
		return err
	}
	return t.Store.Put(keyCenterAlarms, b)
}

// CenterAlarms returns the center's alarms about this terminal as the last sync brought them
// (none before the first sync with a center that sends them).
func (t *Till) CenterAlarms() ([]CenterAlarm, error) {
	b, err := t.Store.Get(keyCenterAlarms)
	if err != nil || b == nil {
		return nil, err
	}
	var list []CenterAlarm
	return list, json.Unmarshal(b, &list)
}

// Label is the alarm's kind in words, for the clerk's screen.
func (a CenterAlarm) Label() string {
	switch a.Kind {
	case "terminal_low_stock":
		return "low stock"
	case "expiring_stock":
		return "expiring stock"
	case "silent_terminal":
		return "terminal silent"
	case "report_gap":
		return "report missing"
	case "credit_limit":
		return "credit limit"
	}
	return strings.ReplaceAll(a.Kind, "_", " ")
}
