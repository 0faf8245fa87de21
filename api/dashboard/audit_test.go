package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/evoucher/evoucher/api/dashboard"
	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/pki"
)

// TestAuditVerifications: the audit page and /api/v1/audit show the verifications auditors
// reported, newest first, with whether their root is the center's.
func TestAuditVerifications(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	ctx := context.Background()
	c := e.mustLogin(t, "auditor")
	var info dashboard.AuditInfo
	body, status := e.get(t, c, "/api/v1/audit")
	if err := json.Unmarshal([]byte(body), &info); status != http.StatusOK || err != nil || info.Verifications == nil || len(info.Verifications) != 0 {
		t.Fatalf("before any report: %d %s", status, body)
	}
	if page, _ := e.get(t, c, "/ui/audit"); !strings.Contains(page, "No auditor has reported a verification yet") {
		t.Fatalf("audit page before any report:\n%s", page)
	}

	cp, err := e.xlog.Sign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	by := pki.Identity{Role: pki.RoleAuditor, Entity: "AUD-1", Serial: "0a"}
	if _, err := e.xlog.RecordVerification(ctx, by, auditlog.VerificationReport{Size: cp.Size, Root: cp.Root, Note: cp.Note,
		Outcome: auditlog.VerificationOK, Duration: 1500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // reported_at orders them
	if _, err := e.xlog.RecordVerification(ctx, pki.Identity{Role: pki.RoleManager, Entity: "MGR-1", Serial: "0b"}, auditlog.VerificationReport{
		Size: cp.Size, Root: bytes.Repeat([]byte{1}, 32), Note: cp.Note, Outcome: auditlog.VerificationOK}); err != nil {
		t.Fatal(err)
	}

	body, status = e.get(t, c, "/api/v1/audit")
	info = dashboard.AuditInfo{}
	if err := json.Unmarshal([]byte(body), &info); status != http.StatusOK || err != nil || len(info.Verifications) != 2 {
		t.Fatalf("%d %s", status, body)
	}
	got, ok := info.Verifications[1], info.Verifications[0]
	if ok.Reporter != "MGR-1" || ok.RootMatches == nil || *ok.RootMatches || got.Reporter != "AUD-1" || got.RootMatches == nil || !*got.RootMatches ||
		got.DurationMS != 1500 || got.Outcome != "ok" || got.Size != cp.Size {
		t.Fatalf("verifications: %s", body)
	}
	for _, key := range []string{`"reporter":"AUD-1"`, `"root_matches":true`, `"root_matches":false`, `"reported_at":`, `"entries_checked":`} {
		if !strings.Contains(body, key) {
			t.Fatalf("/api/v1/audit lacks %s: %s", key, body)
		}
	}
	page, _ := e.get(t, c, "/ui/audit")
	for _, want := range []string{"auditor AUD-1", "manager MGR-1", `<b class="low">NO</b>`, "1500 ms"} {
		if !strings.Contains(page, want) {
			t.Fatalf("audit page lacks %q:\n%s", want, page)
		}
	}
}
