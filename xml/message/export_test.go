package message

// ParseFast and ParseSlow expose Parse's two paths to the tests that hold one to the other.
var (
	ParseFast = parseFast
	ParseSlow = parseSlow
)

// FastParses returns how many documents the fast path has built so far.
func FastParses() uint64 { return fastParses.Load() }

// MatchID, MatchUUID and MatchParty expose the envelope's patterns to the tests that hold them
// to the regular expressions they replace.
var (
	MatchID    = idPattern.MatchString
	MatchUUID  = uuidPattern.MatchString
	MatchParty = partyPattern.MatchString
)
