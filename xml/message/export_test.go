package message

// ParseFast and ParseSlow expose Parse's two paths to the tests that hold one to the other.
var (
	ParseFast = parseFast
	ParseSlow = parseSlow
)

// FastParses returns how many documents the fast path has built so far.
func FastParses() uint64 { return fastParses.Load() }
