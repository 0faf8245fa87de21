package api

import (
	"net/http"

	"github.com/evoucher/evoucher"
)

// StatusOf is the one place where an error kind becomes an HTTP status; the dashboard
// (api/dashboard) answers with it too.
func StatusOf(k evoucher.Kind) int { return statusOf(k) }

func statusOf(k evoucher.Kind) int {
	switch k {
	case evoucher.KindInvalid:
		return http.StatusBadRequest
	case evoucher.KindUnauthorized:
		return http.StatusUnauthorized
	case evoucher.KindForbidden:
		return http.StatusForbidden
	case evoucher.KindNotFound:
		return http.StatusNotFound
	case evoucher.KindConflict:
		return http.StatusConflict
	case evoucher.KindUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// ErrorBody is the JSON of every error response.
type ErrorBody struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"`
}

// writeError answers with the error's status and a message the client can act on; internal
// errors are logged in full and shown as "internal error".
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	kind := evoucher.KindOf(err)
	if kind == evoucher.KindInternal {
		s.log.ErrorContext(r.Context(), "internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		s.log.WarnContext(r.Context(), "request refused", "method", r.Method, "path", r.URL.Path,
			"kind", string(kind), "reason", evoucher.ReasonOf(err), "err", err)
	}
	writeJSON(w, statusOf(kind), ErrorBody{Error: evoucher.MessageOf(err), Reason: evoucher.ReasonOf(err)})
}
